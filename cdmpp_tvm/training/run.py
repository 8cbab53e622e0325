"""Run a training job (``cdmpp-tvm train``): read its data, train (one process or under torchrun), and
write the checkpoint with the facts of how it was made."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch.distributed as dist

from ..data import feature_cache  # module, not its functions: tests replace load_cached_training_data
from ..data.dataset import TrainingData
from ..errors import UserError
from ..model.checkpoint import device_entry, save_checkpoint
from ..model.tree_head import TreeHead
from .distributed import close_distributed, init_distributed
from .job import ConfigError, TrainJob, load_train_job
from .loop import train


@dataclasses.dataclass
class JobData:
    data: TrainingData
    facts: dict  # see feature_cache.load_cached_features
    target_domain: TrainingData | None  # unlabeled programs for CMD, or None


def load_job_data(job: TrainJob, say=print) -> JobData:
    """The training data of a job, its facts, and its target-domain programs when CMD is on; ``say``
    reports what was read (``None``: nothing)."""
    say = say or (lambda *_a, **_k: None)
    dirs, target_dirs = job.training_dirs(), job.target_domain_dirs()
    data, facts = feature_cache.load_cached_training_data(dirs)
    say(f"Read {facts['n_databases']} databases: {len(data)} valid records, {facts['n_failed']} failed runs",
        flush=True)
    target = None
    if job.train.cmd_weight > 0:
        if not target_dirs:
            raise ConfigError(f"{job.path}: cmd_weight > 0 needs target_domain_databases (unlabeled target programs)")
        target, tfacts = feature_cache.load_cached_training_data(target_dirs)
        say(f"Target domain (CMD, latencies unused): {len(target)} programs from {tfacts['n_databases']} "
            "databases", flush=True)
    elif target_dirs:
        say("note: target_domain_databases is ignored because cmd_weight is 0", flush=True)
    return JobData(data, facts, target)


def run_train_job(job: TrainJob, config_path: str | None = None, say=print) -> dict | None:
    """Train the job's model and write its checkpoint (``job.out``); -> the training history on rank 0,
    None on the other ranks. Under torchrun (WORLD_SIZE > 1) every rank loads the data; rank 0 featurizes
    first so that the ranks do not write the same feature caches at once, and only rank 0 reports and
    writes the checkpoint."""
    if not job.out:
        raise ConfigError(f"{config_path or job.path}: no checkpoint to write; pass --out or set out: in the config")
    dirs = job.training_dirs()
    ctx = init_distributed("gloo" if job.train.device == "cpu" else None)
    master = ctx.rank == 0
    try:
        if ctx.world_size > 1:
            if master:
                feature_cache.featurize_databases(dirs + job.target_domain_dirs())
            dist.barrier()
        loaded = load_job_data(job, say if master else None)
        if len(loaded.data) == 0:
            raise UserError(f"no valid records to train on in {', '.join(map(str, dirs))}")
        tasks = sorted(set(loaded.data.groups.tolist()))
        if master:
            say(f"Training on {len(loaded.data)} programs from {len(tasks)} tasks"
                + (f" on {ctx.world_size} processes" if ctx.world_size > 1 else ""), flush=True)
        model, label_transform, history = train(loaded.data, job.model, job.train, target_domain=loaded.target_domain,
                                                state_path=job.state_path)
        if not master:
            return None
        tree_head = None
        if job.train.tree_head_weight > 0:
            tree_head = TreeHead.fit(loaded.data, job.train.tree_head_weight, seed=job.train.seed)
            fit = tree_head.trees.history  # rounds, val_rmse, seconds, n_train, n_val
            history = {**history, "tree_head": {**fit, "weight": tree_head.weight}}
            say(f"Tree head: {fit['rounds']} rounds, validation RMSE of ln latency {fit['val_rmse']:.3f}, "
                f"weight {tree_head.weight:g} ({fit['seconds']:.0f} s)", flush=True)
        info = {"train_config": job.train.to_dict(), "history": history, "n_programs": len(loaded.data),
                "n_tasks": len(tasks), "databases": [str(d) for d in dirs], "split": job.split,
                "config": str(config_path or job.path), "date": time.strftime("%Y-%m-%d %H:%M:%S")}
        save_checkpoint(job.out, model, label_transform, device_entry(loaded.facts["targets"], loaded.data), info,
                        tree_head)
        return history
    finally:
        close_distributed(ctx)


def job_with_overrides(config: str | Path, databases=None, out=None, state_path=None, epochs=None,
                       progress: bool | None = None) -> TrainJob:
    """The training YAML ``config`` with command-line overrides put in (None = keep the file's value)."""
    job = load_train_job(config)
    if databases:
        job = dataclasses.replace(job, databases=list(databases))
    if out:
        job = dataclasses.replace(job, out=out)
    if state_path:
        job = dataclasses.replace(job, state_path=state_path)
    train_cfg = job.train
    if epochs is not None:
        train_cfg = dataclasses.replace(train_cfg, epochs=epochs)
    if progress is False:
        train_cfg = dataclasses.replace(train_cfg, progress=False)
    return dataclasses.replace(job, train=train_cfg)
