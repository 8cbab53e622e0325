"""The training settings (``TrainConfig``): optimizer, schedule, loss, label transform, early stopping,
domain regularizer, training-state files; checked when built."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..model.label_transform import METHODS

LOSSES = ("mse+rank", "mse+mape")


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 256  # programs per optimizer step, over all ranks together
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    rank_loss_weight: float = 1.0  # loss "mse+rank"
    # loss "mse+rank": 0 = hard pair targets (stretches a task's predictions apart); t > 0 = graded targets
    # sigmoid(dy / t), calibrated at the true gap (model/losses.py ranking_pair_losses).
    rank_temperature: float = 0.0
    label_transform: str = "log"  # "log" or "box-cox"
    val_fraction: float = 0.15  # of training tasks, held out for early stopping
    patience: int = 30  # epochs without a better validation loss before stopping
    # Validation tasks are unseen tasks: their loss is noisy and often lowest in the first epochs, before
    # the model has learned anything but the mean (the stop-9 cross-model model was kept from epoch 2).
    # Epochs before min_epochs are never kept over a later one, and patience starts counting after them.
    min_epochs: int = 1
    seed: int = 0
    device: str = "auto"
    time_limit_s: float | None = None
    loss: str = "mse+rank"  # or "mse+mape"
    mape_weight: float = 1.0  # loss "mse+mape"
    cmd_weight: float = 0.0  # 0 = no domain regularizer
    cmd_batch_size: int = 256  # target-domain programs per step (per rank)
    checkpoint_every: int = 1  # epochs between training-state files (with train(..., state_path=...))
    # Batches whose programs are sorted by length (number of leaves) within each window of this many
    # batches of the epoch's shuffle, the batches then shuffled (0 = plain shuffle). A batch is padded to
    # its longest program: leaves are 3-10 per program (mean 3.6), so a shuffled batch of 256 is ~37 %
    # real leaves, a sorted one nearly all; a step costs ~2.2x less on the 2-core box.
    length_bucket_window: int = 0
    # > 0: after training, fit the tree head (model/tree_head.py: boosted trees on the compact AST's leaf
    # features, on the same records) and blend it into every prediction with this weight in log space.
    tree_head_weight: float = 0.0
    progress: bool = True  # tqdm bar over epochs (rank 0 only)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.label_transform not in METHODS:
            raise ValueError(f"label_transform must be one of {METHODS}, got {self.label_transform!r}")
        for key in ("epochs", "batch_size", "checkpoint_every", "cmd_batch_size", "min_epochs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        if not isinstance(self.length_bucket_window, int) or self.length_bucket_window < 0:
            raise ValueError(f"length_bucket_window must be an integer >= 0, got {self.length_bucket_window!r}")
        for key in ("lr", "weight_decay", "grad_clip", "rank_loss_weight", "rank_temperature", "mape_weight",
                    "cmd_weight"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not math.isfinite(v):
                raise ValueError(f"{key} must be a finite number >= 0, got {v!r}")
        if not 0 <= self.tree_head_weight <= 1:
            raise ValueError(f"tree_head_weight must be in [0, 1], got {self.tree_head_weight!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")

    def to_dict(self) -> dict:
        return asdict(self)
