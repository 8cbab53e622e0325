"""Setting up a training run (``prepare_run``): the validation split, the model (a new one gets its
feature scaler and work offset fitted on the training part), the label transform, the labels, the
optimizer and the step schedule (``lr_at``), gathered in a ``TrainingRun``."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.dataset import TrainingData, split_by_group
from ..features import CompactAST
from ..model.inference import to_tensors
from ..model.label_transform import LabelTransform
from ..model.network import CDMPPNet, ModelConfig, log_work
from .config import TrainConfig
from .distributed import DistContext

logger = logging.getLogger(__name__)


def fit_feature_scaler(model: CDMPPNet, asts: list[CompactAST]) -> None:
    rows = np.concatenate([a.leaf_features for a in asts]).astype(np.float64)
    model.set_feature_scaler(torch.tensor(rows.mean(0), dtype=torch.float32),
                             torch.tensor(rows.std(0), dtype=torch.float32))


def fit_work_offset(model: CDMPPNet, asts: list[CompactAST], label_transform: LabelTransform) -> None:
    """Centre the model's work offset on the training programs' mean ln(work)."""
    works = []
    for i in range(0, len(asts), 4096):
        feats, _, mask, _ = to_tensors(asts[i:i + 4096], None, torch.device("cpu"))
        works.append(log_work(feats, mask))
    model.set_work_offset(float(torch.cat(works).double().mean()), label_transform.std)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The learning rate of a step: linear warm-up, then cosine decay to 5% of the peak."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


@dataclass
class TrainingRun:
    """What a run trains on, set up by ``prepare_run`` (a resumed run replaces the label transform and labels)."""

    cfg: TrainConfig
    ctx: DistContext
    dev: torch.device
    data: TrainingData
    val_data: TrainingData | None
    target_domain: TrainingData | None
    model: CDMPPNet
    label_transform: LabelTransform
    y_all: torch.Tensor  # transformed latencies (float32)
    lat_all: torch.Tensor  # latencies in seconds (float64)
    gid_all: torch.Tensor  # task index of each program
    lengths: np.ndarray  # leaves of each program (TrainConfig.length_bucket_window)
    opt: torch.optim.Optimizer
    global_bs: int  # programs per step over all ranks
    n_padded: int  # the epoch's permutation, padded to a multiple of the world size
    steps_per_epoch: int
    total_steps: int

    @property
    def use_cmd(self) -> bool:
        return self.cfg.cmd_weight > 0

    @property
    def n_val(self) -> int:
        return 0 if self.val_data is None else len(self.val_data)


def prepare_run(data: TrainingData, model_cfg: ModelConfig, cfg: TrainConfig, model: CDMPPNet | None,
                label_transform: LabelTransform | None, val_data: TrainingData | None,
                target_domain: TrainingData | None, dev: torch.device, ctx: DistContext) -> TrainingRun:
    """Validation split, model (new: feature scaler and work offset fitted), label transform, labels,
    optimizer and step schedule."""
    data, val_data = _split_validation(data, val_data, cfg)
    _check_target_domain(data, target_domain, cfg)
    model, label_transform = _prepare_model(data, model_cfg, model, label_transform, cfg)
    model.to(dev)
    n = len(data)
    y_all = torch.tensor(label_transform.transform(data.latencies), dtype=torch.float32)
    lat_all = torch.tensor(data.latencies, dtype=torch.float64)
    _, group_ids = np.unique(data.groups, return_inverse=True)
    gid_all = torch.tensor(group_ids)

    # -- optimizer and schedule. With W ranks a step takes ceil(batch_size / W) programs on each rank; the
    # epoch's permutation is padded (by wrapping) to a multiple of W so that every rank gets a share of
    # every step.
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    world = ctx.world_size
    local_bs = math.ceil(cfg.batch_size / world)
    global_bs = local_bs * world
    n_padded = math.ceil(n / world) * world
    steps_per_epoch = max(1, math.ceil(n_padded / global_bs))
    total_steps = cfg.epochs * steps_per_epoch
    lengths = np.array([len(a.leaf_features) for a in data.asts])
    return TrainingRun(cfg, ctx, dev, data, val_data, target_domain, model, label_transform, y_all, lat_all, gid_all,
                       lengths, opt, global_bs, n_padded, steps_per_epoch, total_steps)


def _split_validation(data: TrainingData, val_data: TrainingData | None, cfg: TrainConfig):
    """Validation = whole training tasks (unless given); the feature scaler and label transform are fitted
    on the rest."""
    if val_data is None:
        tr_idx, va_idx = split_by_group(data.groups, cfg.val_fraction, cfg.seed)
        data, val_data = data.subset(tr_idx), (data.subset(va_idx) if len(va_idx) else None)
    if val_data is not None and len(val_data) == 0:
        val_data = None
    return data, val_data


def _check_target_domain(data: TrainingData, target_domain: TrainingData | None, cfg: TrainConfig) -> None:
    if cfg.cmd_weight > 0:
        if target_domain is None or len(target_domain) == 0:
            raise ValueError("train: cmd_weight > 0 needs target-domain programs (train(..., target_domain=...))")
        if (target_domain.device is None) != (data.device is None):
            raise ValueError("train: training and target-domain programs must both have device descriptors or "
                             "both have none")
    elif target_domain is not None:
        logger.warning("train: target_domain given but cmd_weight is 0; the target domain is not used")


def _prepare_model(data: TrainingData, model_cfg: ModelConfig, model: CDMPPNet | None,
                   label_transform: LabelTransform | None, cfg: TrainConfig) -> tuple[CDMPPNet, LabelTransform]:
    new_model = model is None
    if new_model:
        model = CDMPPNet(model_cfg)
        fit_feature_scaler(model, data.asts)
    if label_transform is None:
        label_transform = LabelTransform.fit(data.latencies, cfg.label_transform)
    if model.cfg.work_offset and label_transform.method != "log":
        raise ValueError(f"train: the model's work_offset needs the log label transform, not {label_transform.method!r}")
    if new_model and model.cfg.work_offset:
        fit_work_offset(model, data.asts, label_transform)
    return model, label_transform
