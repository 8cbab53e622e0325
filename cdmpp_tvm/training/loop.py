"""The training loop, readable top to bottom: data in, fitted model and label transform out.

* Loss (``TrainConfig.loss``; the loss functions are in ``model/losses.py``):
  - ``"mse+rank"``: MSE on the transformed latency + ``rank_loss_weight`` x a pairwise logistic ranking
    loss between programs of the same task in the batch (the tuner only needs the order within a task),
    with hard pair targets or, ``rank_temperature`` > 0, graded ones that do not reward gaps larger
    than the true ones;
  - ``"mse+mape"``: MSE on the transformed latency + ``mape_weight`` x the mean absolute percentage
    error of the *latency in seconds*, got by inverting the label transform differentiably. (The original
    CDMPP computed its MAPE term on the standardized Box-Cox labels, dividing by values near zero.)
* Label transform ``log`` or ``box-cox`` (``model/label_transform.py``), fitted on the training part only.
* Optional domain regularizer (``cmd_weight`` > 0): + ``cmd_weight`` x the central moment discrepancy
  (Zellinger et al. 2017, K = 5) between the program embeddings of the training batch and of a batch of
  unlabeled programs of the other domain (``train(..., target_domain=...)``, or ``source_domain=...`` when
  the labeled data is the new device's, as in fine-tuning; their latencies are ignored). The embeddings
  compared are the *device-free* program embeddings (before the device embedding is added), so that
  programs of two devices can be aligned without erasing the device information.
* Early stopping watches a validation split made of whole *tasks* taken from the training data, never
  from the test data; the returned model holds the weights of the best validation epoch.
* Every ``checkpoint_every`` epochs the whole training state goes to ``state_path`` (atomically); a later
  ``train(..., state_path=...)`` with the same data resumes from it and continues the same sequence
  (the shuffle of epoch e depends only on (seed, e); the RNG state is restored).
* Run under ``torchrun --nproc_per_node N`` (environment ``WORLD_SIZE`` > 1) it trains data-parallel with
  ``DistributedDataParallel``: every rank draws the same permutation of each epoch and takes its own
  shard of every batch; rank 0 validates, writes states and calls ``on_epoch``; the stop decision is
  broadcast so that all ranks stop together.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import TrainingData
from ..errors import UserError
from ..model.inference import predict_transformed, to_tensors
from ..model.label_transform import LabelTransform
from ..model.losses import (
    MAPE_PRED_CLAMP,
    central_moment_discrepancy,
    mape_loss,
    ranking_pair_losses,
    regression_loss,
)
from ..model.network import CDMPPNet, ModelConfig
from .config import TrainConfig
from .distributed import (
    DistContext,
    all_reduce_sum,
    broadcast_from_rank0,
    close_distributed,
    init_distributed,
    torch_device,
    wrap_ddp,
)
from .prepare import TrainingRun, lr_at, prepare_run
from .state import (
    STATE_FORMAT,
    STATE_FORMAT_VERSION,
    cpu_state_dict,
    load_training_state,
    save_training_state,
)

logger = logging.getLogger(__name__)


def batch_loss(pred: torch.Tensor, y: torch.Tensor, group_ids: torch.Tensor, latency_s: torch.Tensor,
               label_transform: LabelTransform, cfg: TrainConfig) -> torch.Tensor:
    """The configured training loss of one batch (``cfg.loss``), without the domain regularizer."""
    if cfg.loss == "mse+mape":
        mse = torch.mean((pred - y) ** 2)
        return mse + cfg.mape_weight * mape_loss(pred, latency_s, label_transform).to(mse.dtype)
    return regression_loss(pred, y, group_ids, cfg.rank_loss_weight, cfg.rank_temperature)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The random stream of one epoch: depends only on (seed, epoch, stream), so a resumed run and a
    straight run shuffle alike, and all ranks draw the same permutation (stream 0)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 101 + stream)


@dataclass
class _Progress:
    """What changes from epoch to epoch, and what a training state saves."""

    history: dict
    best: float = float("inf")
    best_state: dict | None = None
    bad_epochs: int = 0
    step: int = 0
    start_epoch: int = 0


# ------------------------------------------------------------------------------------------------ train

def train(data: TrainingData, model_cfg: ModelConfig, cfg: TrainConfig, model: CDMPPNet | None = None,
          label_transform: LabelTransform | None = None, val_data: TrainingData | None = None,
          on_epoch=None, *, target_domain: TrainingData | None = None,
          state_path: str | os.PathLike | None = None,
          source_domain: TrainingData | None = None) -> tuple[CDMPPNet, LabelTransform, dict]:
    """Train (or continue training ``model``) and return (model with the best validation weights,
    label transform, history).

    ``val_data``: the early-stopping set; default: whole tasks (``val_fraction``) split off ``data``.
    ``on_epoch(epoch, model, history)`` is called after every epoch (on rank 0 only; for checkpoints and
    progress; an exception from it stops training after the state file is written).
    ``target_domain``: unlabeled programs for the CMD regularizer (``cfg.cmd_weight`` > 0).
    ``source_domain``: the same role under the name that fits fine-tuning (the labeled ``data`` is the new
    device's, the unlabeled programs are the source device's); give one of the two.
    ``state_path``: training-state file, written every ``cfg.checkpoint_every`` epochs and at the end;
    if it exists, training resumes from it.

    history: ``train_loss``, ``val_loss``, ``val_mape`` (MAPE of the de-transformed predictions, NaN
    without a validation split), ``cmd`` (per epoch), ``best_epoch``, ``stopped`` ("epochs", "early" or
    "time_limit"), ``seconds``, ``world_size``, ``samples_seen`` (training programs this rank processed)."""
    if source_domain is not None:
        if target_domain is not None:
            raise ValueError("train: give target_domain or source_domain (the other domain for CMD), not both")
        target_domain = source_domain
    if len(data) == 0:
        raise ValueError("train: no training data")
    ctx = init_distributed("gloo" if cfg.device == "cpu" else None)
    try:
        return _train(data, model_cfg, cfg, model, label_transform, val_data, on_epoch, target_domain,
                      state_path, ctx)
    finally:
        close_distributed(ctx)


def _train(data, model_cfg, cfg, model, label_transform, val_data, on_epoch, target_domain, state_path,
           ctx: DistContext):
    """Seed, prepare the run, resume it if a state exists, run the epochs, keep the best weights."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    dev = torch_device(cfg.device, ctx)
    run = prepare_run(data, model_cfg, cfg, model, label_transform, val_data, target_domain, dev, ctx)
    progress = _Progress({"train_loss": [], "val_loss": [], "val_mape": [], "cmd": [], "best_epoch": -1,
                          "stopped": "epochs", "seconds": 0.0, "world_size": ctx.world_size, "samples_seen": 0})
    if state_path is not None and os.path.exists(state_path):
        _resume(run, progress, state_path)
    net = wrap_ddp(run.model, dev, ctx, has_device_descriptors=run.data.device is not None)
    _run_epochs(run, progress, net, state_path, on_epoch)
    if progress.best_state is not None:
        run.model.load_state_dict(progress.best_state)
    run.model.eval()
    return run.model, run.label_transform, progress.history


# ----------------------------------------------------------------------------------------------- resume

def _resume(run: TrainingRun, progress: _Progress, state_path: str | os.PathLike) -> None:
    """Continue from the training state at ``state_path``: weights, optimizer, label transform, best
    weights, counters, history and RNG states."""
    state = load_training_state(state_path)
    _check_resumable(run, state, state_path)
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.label_transform = LabelTransform.from_dict(state["label_transform"])
    run.y_all = torch.tensor(run.label_transform.transform(run.data.latencies), dtype=torch.float32)
    progress.best, progress.bad_epochs, progress.step = (float(state["best_loss"]), int(state["bad_epochs"]),
                                                         int(state["step"]))
    progress.best_state = state["best_state"] or None
    progress.history = {**state["history"], "world_size": run.ctx.world_size}
    progress.start_epoch = int(state["epoch"]) + 1
    torch.set_rng_state(state["torch_rng"])
    if torch.cuda.is_available() and len(state.get("cuda_rng", [])) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    if progress.history["stopped"] == "early" or progress.start_epoch >= run.cfg.epochs:
        progress.start_epoch = run.cfg.epochs  # that run had finished: nothing left to do
    elif run.ctx.rank == 0:
        logger.info("Resuming training from %s after epoch %d", state_path, progress.start_epoch - 1)


def _check_resumable(run: TrainingRun, state: dict, state_path: str | os.PathLike) -> None:
    """Refuse a state of another model or other data; warn about changed training settings."""
    cfg, model, n = run.cfg, run.model, len(run.data)
    if state["model_config"] != model.cfg.to_dict():
        raise UserError(f"{state_path}: training state of another model config {state['model_config']}; "
                         f"this run's is {model.cfg.to_dict()}")
    if state["n_train"] != n or state["n_val"] != run.n_val:
        raise UserError(f"{state_path}: training state of {state['n_train']} training / {state['n_val']} "
                         f"validation programs, but this run has {n} / {run.n_val}; "
                         "remove the state file to start over")
    changed = sorted(k for k, v in state["train_config"].items()
                     if k not in ("epochs", "time_limit_s", "progress", "checkpoint_every", "device")
                     and getattr(cfg, k, v) != v)
    if changed:
        logger.warning("%s: resuming with changed settings %s; the run will not match an uninterrupted one",
                       state_path, changed)


def _training_state(run: TrainingRun, progress: _Progress, epoch: int) -> dict:
    return {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "epoch": epoch, "step": progress.step,
            "model_config": run.model.cfg.to_dict(), "train_config": run.cfg.to_dict(), "n_train": len(run.data),
            "n_val": run.n_val, "model": cpu_state_dict(run.model),
            "optimizer": run.opt.state_dict(), "best_state": progress.best_state or {}, "best_loss": progress.best,
            "bad_epochs": progress.bad_epochs, "history": progress.history,
            "label_transform": run.label_transform.to_dict(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


# ----------------------------------------------------------------------------------------------- epochs

def _run_epochs(run: TrainingRun, progress: _Progress, net, state_path, on_epoch) -> None:
    """The loop: train an epoch, validate, keep the best weights, write the state, stop when due."""
    cfg, master = run.cfg, run.ctx.rank == 0
    history = progress.history
    with tqdm(total=cfg.epochs, initial=progress.start_epoch, desc="train", unit="epoch", dynamic_ncols=True,
              disable=not (cfg.progress and master)) as bar:
        start, seconds_before = time.perf_counter(), float(history["seconds"])
        for epoch in range(progress.start_epoch, cfg.epochs):
            sums = _train_epoch(run, progress, net, epoch)
            history["samples_seen"] += int(sums[2])
            sums = all_reduce_sum(sums, run.dev, run.ctx)
            train_loss = float(sums[0] / sums[2])
            val_loss, val_mape, out_of_time = _validate(run, train_loss, start)
            cmd = float(sums[1] / sums[2]) if run.use_cmd else 0.0
            stop = _select(run, progress, epoch, train_loss, val_loss, val_mape, cmd, out_of_time)
            history["seconds"] = seconds_before + time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", refresh=False)
            if master and state_path is not None and (stop or (epoch + 1) % cfg.checkpoint_every == 0):
                save_training_state(state_path, _training_state(run, progress, epoch))
            if master and on_epoch is not None:
                on_epoch(epoch, run.model, history)
            if stop:
                break


def length_bucketed(perm: torch.Tensor, lengths: np.ndarray, batch_size: int, window: int,
                    generator: torch.Generator) -> torch.Tensor:
    """``perm`` reordered so that each run of ``batch_size`` consecutive entries (a batch) holds programs
    of similar length: every window of ``window`` batches of ``perm`` is sorted by length (stable) and cut
    into batches, and the batches of all windows are then shuffled, the one short batch (if any) kept last
    so that the batches stay aligned to multiples of ``batch_size``. Same programs per epoch; only which
    programs share a batch changes."""
    chunk = batch_size * window
    batches = []
    for start in range(0, len(perm), chunk):
        part = perm[start:start + chunk]
        part = part[torch.from_numpy(np.argsort(lengths[part.numpy()], kind="stable"))]
        batches.extend(part.split(batch_size))
    short = [batches.pop()] if len(batches[-1]) < batch_size else []
    order = torch.randperm(len(batches), generator=generator)
    return torch.cat([batches[i] for i in order.tolist()] + short)


def _train_epoch(run: TrainingRun, progress: _Progress, net, epoch: int) -> torch.Tensor:
    """One pass over this rank's shard of the epoch's permutation; -> this rank's sums (loss x programs,
    cmd x programs, programs)."""
    cfg, ctx, n = run.cfg, run.ctx, len(run.data)
    net.train()
    gen = epoch_generator(cfg.seed, epoch)
    perm = torch.randperm(n, generator=gen)  # the same on every rank
    if cfg.length_bucket_window:
        perm = length_bucketed(perm, run.lengths, run.global_bs, cfg.length_bucket_window, gen)
    if run.n_padded > n:
        perm = torch.cat([perm, perm[:run.n_padded - n]])
    target_gen = epoch_generator(cfg.seed, epoch, 1 + ctx.rank)
    sums = torch.zeros(3, dtype=torch.float64)  # loss x programs, cmd x programs, programs
    for b in range(run.steps_per_epoch):
        idx = perm[b * run.global_bs:(b + 1) * run.global_bs][ctx.rank::ctx.world_size].numpy()  # this rank's shard
        _train_step(run, net, idx, target_gen, progress.step, sums)
        progress.step += 1
    return sums


def _train_step(run: TrainingRun, net, idx: np.ndarray, target_gen: torch.Generator, step: int,
                sums: torch.Tensor) -> None:
    """One optimizer step on the programs ``idx`` (adds to ``sums``)."""
    cfg, data, target_domain, dev = run.cfg, run.data, run.target_domain, run.dev
    asts = [data.asts[i] for i in idx]
    devv = None if data.device is None else data.device[idx]
    if run.use_cmd:  # target programs ride along in the same forward pass (one DDP forward per step)
        t_idx = torch.randperm(len(target_domain), generator=target_gen)[:cfg.cmd_batch_size].numpy()
        asts += [target_domain.asts[i] for i in t_idx]
        if devv is not None:
            devv = np.concatenate([devv, target_domain.device[t_idx]])
    feats, pos, mask, devt = to_tensors(asts, devv, dev)
    for g in run.opt.param_groups:
        g["lr"] = lr_at(step, cfg, run.total_steps)
    if run.use_cmd:
        pred, _, z = net(feats, pos, mask, devt, return_program_embedding=True)
    else:
        pred, z = net(feats, pos, mask, devt)
    k = len(idx)
    loss = batch_loss(pred[:k], run.y_all[idx].to(dev), run.gid_all[idx].to(dev), run.lat_all[idx].to(dev),
                      run.label_transform, cfg)
    total = loss
    if run.use_cmd:
        cmd = central_moment_discrepancy(z[:k], z[k:])
        total = loss + cfg.cmd_weight * cmd
        sums[1] += cmd.item() * k
    run.opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.opt.step()
    sums[0] += loss.item() * k
    sums[2] += k


def _validate(run: TrainingRun, train_loss: float, start: float) -> tuple[float, float, bool]:
    """Validation on rank 0; every rank then does the same bookkeeping with the broadcast numbers.
    -> (validation loss, validation MAPE, out of time)."""
    cfg = run.cfg
    verdict = torch.zeros(3, dtype=torch.float64)  # val loss, val MAPE, out of time
    if run.ctx.rank == 0:
        if run.val_data is not None:
            ev = evaluate(run.model, run.val_data, run.label_transform, cfg, run.dev)
            verdict[0], verdict[1] = ev["loss"], ev["mape"]
        else:
            verdict[0], verdict[1] = train_loss, float("nan")
        verdict[2] = float(cfg.time_limit_s is not None and time.perf_counter() - start > cfg.time_limit_s)
    verdict = broadcast_from_rank0(verdict, run.dev, run.ctx)
    return float(verdict[0]), float(verdict[1]), bool(verdict[2])


def _select(run: TrainingRun, progress: _Progress, epoch: int, train_loss: float, val_loss: float, val_mape: float,
            cmd: float, out_of_time: bool) -> str | None:
    """Record the epoch; keep its weights if its validation loss is the best (early stopping and model
    selection). -> why training stops after this epoch ("early", "time_limit", "epochs"), or None."""
    cfg, history = run.cfg, progress.history
    history["train_loss"].append(train_loss)
    history["val_loss"].append(val_loss)
    history["val_mape"].append(val_mape)
    history["cmd"].append(cmd)
    if val_loss < progress.best - 1e-6 or epoch < cfg.min_epochs:
        progress.best, progress.bad_epochs, history["best_epoch"] = val_loss, 0, epoch
        progress.best_state = cpu_state_dict(run.model)
    else:
        progress.bad_epochs += 1
    stop = ("early" if progress.bad_epochs >= cfg.patience else "time_limit" if out_of_time
            else "epochs" if epoch == cfg.epochs - 1 else None)
    if stop:
        history["stopped"] = stop
    return stop


# ----------------------------------------------------------------------------------------------- evaluate

def evaluate(model: CDMPPNet, data: TrainingData, label_transform: LabelTransform, cfg: TrainConfig,
             dev: torch.device) -> dict:
    """{"loss": the configured loss (no regularizer), "mape": MAPE of de-transformed predictions} on
    ``data``. Ranking pairs are formed within each task, task by task, so memory stays O(task size^2)."""
    pred = predict_transformed(model, data.asts, data.device, cfg.batch_size, dev)
    y = label_transform.transform(data.latencies)
    mape = float(np.mean(np.abs(label_transform.inverse(np.clip(pred, -MAPE_PRED_CLAMP, MAPE_PRED_CLAMP))
                                - data.latencies) / data.latencies))
    p, t = torch.tensor(pred), torch.tensor(y)
    mse = float(torch.mean((p - t) ** 2))
    if cfg.loss == "mse+mape":
        loss = mse + cfg.mape_weight * float(mape_loss(p, torch.tensor(data.latencies), label_transform))
    else:
        loss, rank_sum, n_pairs = mse, 0.0, 0
        if cfg.rank_loss_weight > 0:
            _, gid = np.unique(data.groups, return_inverse=True)
            order = np.argsort(gid, kind="stable")
            for sel in np.split(order, np.nonzero(np.diff(gid[order]))[0] + 1):
                pair_losses = ranking_pair_losses(p[torch.from_numpy(sel)], t[torch.from_numpy(sel)],
                                                  temperature=cfg.rank_temperature)
                rank_sum += float(pair_losses.sum())
                n_pairs += pair_losses.numel()
            if n_pairs:
                loss += cfg.rank_loss_weight * rank_sum / n_pairs
    return {"loss": float(loss), "mape": mape}
