"""The training loop, readable top to bottom: data in, fitted model and label transform out.

Loss = MSE on the transformed latency + ``rank_loss_weight`` x a pairwise logistic ranking loss between
programs of the same task in the batch (the tuner only needs the order within a task to be right).
Early stopping watches a validation split made of whole *tasks* taken from the training data, never
from the test data.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..features import CompactAST
from .inference import default_torch_device, predict_transformed, to_tensors
from .label_transform import LabelTransform
from .network import CDMPPNet, ModelConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 256
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    rank_loss_weight: float = 1.0
    label_transform: str = "log"
    val_fraction: float = 0.15  # of training tasks, held out for early stopping
    patience: int = 30  # epochs without a better validation loss before stopping
    seed: int = 0
    device: str = "auto"
    time_limit_s: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingData:
    """``asts``: N programs; ``latencies``: (N,) seconds, > 0; ``groups``: (N,) task key of each program;
    ``device``: (N, DEVICE_DESCRIPTOR_DIM) descriptor of the device each was measured on, or None."""

    asts: list[CompactAST]
    latencies: np.ndarray
    groups: np.ndarray
    device: np.ndarray | None = None

    def __post_init__(self):
        self.latencies = np.asarray(self.latencies, dtype=np.float64)
        self.groups = np.asarray(self.groups)
        n = len(self.asts)
        if self.latencies.shape != (n,) or self.groups.shape != (n,):
            raise ValueError(f"TrainingData: {n} programs but latencies {self.latencies.shape} and groups "
                             f"{self.groups.shape}; each must be ({n},)")
        if self.device is not None and (self.device.ndim != 2 or self.device.shape[0] != n):
            raise ValueError(f"TrainingData: device must be ({n}, D), got {self.device.shape}")
        if n and (not np.all(np.isfinite(self.latencies)) or np.any(self.latencies <= 0)):
            raise ValueError("TrainingData: latencies must be finite and > 0 seconds")

    def subset(self, idx: np.ndarray) -> "TrainingData":
        return TrainingData([self.asts[i] for i in idx], self.latencies[idx], self.groups[idx],
                            None if self.device is None else self.device[idx])

    def __len__(self) -> int:
        return len(self.asts)


def regression_loss(pred: torch.Tensor, y: torch.Tensor, group_ids: torch.Tensor, rank_weight: float) -> torch.Tensor:
    """MSE + rank_weight * mean pairwise logistic loss over pairs of the same group with different y."""
    loss = torch.mean((pred - y) ** 2)
    if rank_weight > 0:
        same = group_ids.unsqueeze(0) == group_ids.unsqueeze(1)
        dy = y.unsqueeze(0) - y.unsqueeze(1)
        pairs = same & (dy.abs() > 1e-3)
        if pairs.any():
            dp = pred.unsqueeze(0) - pred.unsqueeze(1)
            loss = loss + rank_weight * torch.nn.functional.softplus(-torch.sign(dy[pairs]) * dp[pairs]).mean()
    return loss


def split_by_group(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with whole groups in val; val is empty when there are fewer than 2 groups."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_val = int(round(len(uniq) * fraction)) if len(uniq) >= 2 else 0
    n_val = min(max(n_val, 1 if len(uniq) >= 2 and fraction > 0 else 0), len(uniq) - 1) if len(uniq) >= 2 else 0
    val_groups = set(rng.choice(uniq, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.array([g in val_groups for g in groups])
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]


def fit_feature_scaler(model: CDMPPNet, asts: list[CompactAST]) -> None:
    rows = np.concatenate([a.leaf_features for a in asts]).astype(np.float64)
    model.set_feature_scaler(torch.tensor(rows.mean(0), dtype=torch.float32),
                             torch.tensor(rows.std(0), dtype=torch.float32))


def train(data: TrainingData, model_cfg: ModelConfig, cfg: TrainConfig, model: CDMPPNet | None = None,
          label_transform: LabelTransform | None = None, val_data: TrainingData | None = None,
          on_epoch=None) -> tuple[CDMPPNet, LabelTransform, dict]:
    """Train (or continue training ``model``) and return (model with the best validation weights,
    label transform, history). ``on_epoch(epoch, model, history)`` is called after every epoch (for
    checkpoints and progress)."""
    if len(data) == 0:
        raise ValueError("train: no training data")
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    dev = default_torch_device(cfg.device)
    if val_data is None:
        tr_idx, va_idx = split_by_group(data.groups, cfg.val_fraction, cfg.seed)
        data, val_data = data.subset(tr_idx), (data.subset(va_idx) if len(va_idx) else None)
    if model is None:
        model = CDMPPNet(model_cfg)
        fit_feature_scaler(model, data.asts)
    if label_transform is None:
        label_transform = LabelTransform.fit(data.latencies, cfg.label_transform)
    model.to(dev)
    y_all = torch.tensor(label_transform.transform(data.latencies), dtype=torch.float32)
    _, group_ids = np.unique(data.groups, return_inverse=True)
    gid_all = torch.tensor(group_ids)

    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(data) / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 5% of the peak
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    history = {"train_loss": [], "val_loss": [], "best_epoch": -1, "stopped": "epochs"}
    best, best_state, bad_epochs, step = float("inf"), None, 0, 0
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        model.train()
        perm = torch.randperm(len(data))
        total = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * cfg.batch_size:(b + 1) * cfg.batch_size].numpy()
            feats, pos, mask, devv = to_tensors([data.asts[i] for i in idx],
                                                None if data.device is None else data.device[idx], dev)
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            pred, _ = model(feats, pos, mask, devv)
            loss = regression_loss(pred, y_all[idx].to(dev), gid_all[idx].to(dev), cfg.rank_loss_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            total += loss.item() * len(idx)
            step += 1
        history["train_loss"].append(total / len(data))
        val_loss = evaluate_loss(model, val_data, label_transform, cfg, dev) if val_data is not None and len(val_data) else history["train_loss"][-1]
        history["val_loss"].append(val_loss)
        if val_loss < best - 1e-6:
            best, bad_epochs, history["best_epoch"] = val_loss, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        if on_epoch is not None:
            on_epoch(epoch, model, history)
        if bad_epochs >= cfg.patience:
            history["stopped"] = "early"
            break
        if cfg.time_limit_s is not None and time.perf_counter() - start > cfg.time_limit_s:
            history["stopped"] = "time_limit"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return model, label_transform, history


def evaluate_loss(model: CDMPPNet, data: TrainingData, label_transform: LabelTransform, cfg: TrainConfig,
                  dev: torch.device) -> float:
    pred = predict_transformed(model, data.asts, data.device, cfg.batch_size, dev)
    y = label_transform.transform(data.latencies)
    _, gid = np.unique(data.groups, return_inverse=True)
    return float(regression_loss(torch.tensor(pred), torch.tensor(y), torch.tensor(gid), cfg.rank_loss_weight))
