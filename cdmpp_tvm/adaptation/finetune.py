"""Adapt a trained checkpoint to a new device from few measurements: ``cdmpp-tvm finetune``.

    from cdmpp_tvm.adaptation import finetune, finetune_databases
    result = finetune_databases("base.pt", ["measured_on_new_device/"], "new.pt",
                                source_dirs=["data_of_the_training_device/"], cmd_weight=1.0)

What it does (CDMPP section 4.2, with the regularizer of section 3.1):

* the labeled data are the new ("target") device's measured records; their device descriptors come from
  the records' targets (``cdmpp_tvm.device``) through the feature cache;
* validation = the target records of whole held-out *tasks* (``val_fraction`` of the target tasks),
  never used for fine-tuning; early stopping and model selection watch their loss, and the result
  reports BASE's and the fine-tuned model's loss and MAPE on them;
* optional CMD regularizer (``cmd_weight`` > 0 with ``source`` programs, e.g. records of the device the
  base was trained on): the central moment discrepancy between the device-free program embeddings of
  source-device programs and of the target-device batch, so that the target batch does not pull the
  representation away from what the base learnt; the source latencies are not used;
* BASE's label transform and feature scaler are kept (the fine-tuned model predicts on the same scales),
  every layer is trained (the original froze none), with a fresh AdamW and a short warm-up;
* the loop is ``cdmpp_tvm.training.train`` (``source_domain=`` is its CMD input);
* the output is a normal checkpoint whose ``device`` entry is the target device (name, targets,
  descriptor, ``finetuned_from``), loadable by ``CDMPPCostModel(checkpoint=...)``.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace

from ..model.checkpoint import Checkpoint, device_entry, load_checkpoint, save_checkpoint
from ..data.dataset import TrainingData, split_by_group
from ..data.feature_cache import load_cached_training_data
from ..errors import UserError
from ..model import CDMPPNet, LabelTransform
from ..model.inference import default_torch_device
from ..model.tree_head import TreeHead
from ..training import TrainConfig, evaluate, train

logger = logging.getLogger(__name__)


def default_finetune_config(base: Checkpoint | None = None, **overrides) -> TrainConfig:
    """Fine-tuning settings: small batches, a short warm-up and patience; the learning rate and the loss
    settings (loss, rank / MAPE weights, weight decay) are BASE's own when its checkpoint records them
    (else 5e-4 and the TrainConfig defaults)."""
    cfg = dict(epochs=100, batch_size=64, lr=5e-4, weight_decay=1e-4, warmup_steps=10, patience=20,
               cmd_weight=1.0, cmd_batch_size=64, val_fraction=0.2)
    base_cfg = (base.info.get("train_config") or {}) if base is not None else {}
    for key in ("lr", "weight_decay", "loss", "rank_loss_weight", "rank_temperature", "mape_weight", "grad_clip",
                "label_transform"):
        if key in base_cfg:
            cfg[key] = base_cfg[key]
    cfg.update(overrides)
    return TrainConfig(**cfg)


@dataclass
class FinetuneResult:
    model: CDMPPNet
    label_transform: LabelTransform
    history: dict
    config: TrainConfig
    n_train: int
    n_val: int
    train_tasks: list[str] = field(default_factory=list)
    val_tasks: list[str] = field(default_factory=list)
    base_val: dict | None = None  # {"loss", "mape"} of BASE on the validation tasks (None without them)
    val: dict | None = None  # the same for the fine-tuned model
    tree_head: TreeHead | None = None  # BASE's tree head re-scaled to the target programs (None: BASE has none)

    def summary(self) -> dict:
        return {"n_train": self.n_train, "n_val": self.n_val, "train_tasks": self.train_tasks,
                "val_tasks": self.val_tasks, "base_val": self.base_val, "val": self.val,
                "best_epoch": self.history.get("best_epoch"), "stopped": self.history.get("stopped"),
                "seconds": self.history.get("seconds")}


def finetune(base: Checkpoint, target: TrainingData, source: TrainingData | None = None,
             cfg: TrainConfig | None = None, val_fraction: float | None = None, seed: int | None = None,
             val_data: TrainingData | None = None) -> FinetuneResult:
    """Fine-tune a copy of ``base.model`` on the target-device programs ``target`` (see the module
    docstring). ``source``: programs of the source device for the CMD regularizer (used when
    ``cfg.cmd_weight`` > 0). ``val_fraction`` / ``seed``: the share of target tasks held out for
    validation and the split's seed (default: ``cfg``'s); ``val_data``: an explicit validation set
    instead (then every program of ``target`` is trained on)."""
    cfg = cfg or default_finetune_config(base)
    val_fraction = cfg.val_fraction if val_fraction is None else val_fraction
    seed = cfg.seed if seed is None else seed
    if len(target) == 0:
        raise UserError("finetune: no target-device programs")
    if val_data is None:
        tr_idx, va_idx = split_by_group(target.groups, val_fraction, seed)
        train_data = target.subset(tr_idx)
        val_data = target.subset(va_idx) if len(va_idx) else None
    else:
        train_data = target
    if val_data is None:
        logger.warning("finetune: fewer than 2 target tasks, so no validation tasks; early stopping watches the "
                       "training loss")
    use_cmd = cfg.cmd_weight > 0 and source is not None and len(source) > 0
    if cfg.cmd_weight > 0 and not use_cmd:
        logger.info("finetune: no source-device programs given; fine-tuning without the CMD regularizer")
        cfg = replace(cfg, cmd_weight=0.0)
    # With validation tasks given, train() must not split the (few) training programs again. A few dozen
    # programs make one step per epoch: the warm-up must not take most of the run.
    total_steps = cfg.epochs * math.ceil(len(train_data) / cfg.batch_size)
    cfg = replace(cfg, val_fraction=0.0, seed=seed, warmup_steps=max(1, min(cfg.warmup_steps, total_steps // 10)))
    model = copy.deepcopy(base.model).cpu()
    dev = default_torch_device(cfg.device)
    base_val = evaluate(base.model.to(dev), val_data, base.label_transform, cfg, dev) if val_data is not None else None
    model, label_transform, history = train(train_data, model.cfg, cfg, model=model,
                                            label_transform=base.label_transform, val_data=val_data,
                                            source_domain=source if use_cmd else None)
    val = evaluate(model, val_data, label_transform, cfg, dev) if val_data is not None else None
    if base_val is not None and val is not None and val["loss"] >= base_val["loss"]:
        logger.warning("finetune: the fine-tuned model's validation loss %.4f is not below BASE's %.4f",
                       val["loss"], base_val["loss"])
    # BASE's tree head with its latency scale moved to the target device (its ranking is unchanged).
    tree_head = None if base.tree_head is None else base.tree_head.recalibrated(target.asts, target.latencies)
    return FinetuneResult(model, label_transform, history, cfg, len(train_data),
                          0 if val_data is None else len(val_data), sorted(set(train_data.groups.tolist())),
                          [] if val_data is None else sorted(set(val_data.groups.tolist())), base_val, val, tree_head)


def finetune_databases(base: str | os.PathLike | Checkpoint, target_dirs: list, out: str | os.PathLike,
                       source_dirs: list | None = None, cmd_weight: float = 1.0, epochs: int | None = None,
                       val_fraction: float = 0.2, seed: int = 0, progress: bool = True,
                       **config_overrides) -> FinetuneResult:
    """``finetune`` on the valid records of MetaSchedule databases (featurized through the feature cache)
    and write the result to the checkpoint ``out``. ``config_overrides``: TrainConfig fields."""
    ckpt = base if isinstance(base, Checkpoint) else load_checkpoint(base)
    target, facts = load_cached_training_data(list(target_dirs))
    if len(target) == 0:
        raise UserError(f"finetune: no valid records in {len(facts.get('targets', []))} target(s) under "
                         f"{', '.join(map(str, target_dirs))} ({facts['n_failed']} failed runs)")
    source = None
    if source_dirs and cmd_weight > 0:
        source, _ = load_cached_training_data(list(source_dirs))
    overrides = dict(cmd_weight=cmd_weight, val_fraction=val_fraction, seed=seed, progress=progress, **config_overrides)
    if epochs is not None:
        overrides["epochs"] = epochs
    cfg = default_finetune_config(ckpt, **overrides)
    result = finetune(ckpt, target, source, cfg)
    device = device_entry(facts["targets"], target) | {"finetuned_from": ckpt.device.get("name")}
    info = {"finetune": {"base": ckpt.path, "base_device": ckpt.device.get("name"),
                         "target_databases": [str(d) for d in target_dirs],
                         "source_databases": [str(d) for d in source_dirs or []], **result.summary()},
            "train_config": result.config.to_dict(), "history": result.history, "n_programs": result.n_train,
            "n_tasks": len(result.train_tasks),
            "base_info": {k: v for k, v in ckpt.info.items() if k not in ("history", "base_info")},
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    save_checkpoint(out, result.model, result.label_transform, device, info, result.tree_head)
    return result
