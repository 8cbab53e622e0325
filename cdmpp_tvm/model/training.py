"""The training loop, readable top to bottom: data in, fitted model and label transform out.

* Loss (``TrainConfig.loss``):
  - ``"mse+rank"``: MSE on the transformed latency + ``rank_loss_weight`` x a pairwise logistic ranking
    loss between programs of the same task in the batch (the tuner only needs the order within a task);
  - ``"mse+mape"``: MSE on the transformed latency + ``mape_weight`` x the mean absolute percentage
    error of the *latency in seconds*, got by inverting the label transform differentiably. (The original
    CDMPP computed its MAPE term on the standardized Box-Cox labels, dividing by values near zero.)
* Label transform ``log`` or ``box-cox`` (``label_transform.py``), fitted on the training part only.
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
import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..atomic_io import atomic_path
from ..errors import UserError
from ..features import CompactAST
from .inference import default_torch_device, predict_transformed, to_tensors
from .label_transform import METHODS, LabelTransform
from .network import CDMPPNet, ModelConfig, log_work

logger = logging.getLogger(__name__)

LOSSES = ("mse+rank", "mse+mape")
STATE_FORMAT = "cdmpp-tvm-training-state"
STATE_FORMAT_VERSION = 1


@dataclass
class TrainConfig:
    epochs: int = 300
    batch_size: int = 256  # programs per optimizer step, over all ranks together
    lr: float = 5e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    grad_clip: float = 1.0
    rank_loss_weight: float = 1.0  # loss "mse+rank"
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
    progress: bool = True  # tqdm bar over epochs (rank 0 only)

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.label_transform not in METHODS:
            raise ValueError(f"label_transform must be one of {METHODS}, got {self.label_transform!r}")
        for key in ("epochs", "batch_size", "checkpoint_every", "cmd_batch_size", "min_epochs"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {getattr(self, key)!r}")
        for key in ("lr", "weight_decay", "grad_clip", "rank_loss_weight", "mape_weight", "cmd_weight"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or not math.isfinite(v):
                raise ValueError(f"{key} must be a finite number >= 0, got {v!r}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")

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


# ----------------------------------------------------------------------------------------------- losses

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


# Predictions are clamped to this many standard deviations of the training labels before they are turned
# into seconds, so that an untrained model's wild outputs give a large but finite MAPE.
MAPE_PRED_CLAMP = 10.0


def mape_loss(pred: torch.Tensor, latency_s: torch.Tensor, label_transform: LabelTransform) -> torch.Tensor:
    """Mean |predicted - true| / true latency, in seconds; ``pred`` in the label-transform space.
    Computed in float64 and differentiable through the inverse label transform."""
    pred_s = label_transform.inverse_torch(pred.double().clamp(-MAPE_PRED_CLAMP, MAPE_PRED_CLAMP))
    lat = latency_s.double()
    return (torch.abs(pred_s - lat) / lat).mean()


def central_moment_discrepancy(x: torch.Tensor, y: torch.Tensor, k: int = 5) -> torch.Tensor:
    """CMD (Zellinger et al. 2017) between samples x (n, d) and y (m, d), moments 1..k, scale 1:
    ||mean x - mean y||_2 + sum_{j=2..k} ||E (x - mean x)^j - E (y - mean y)^j||_2."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = x - mx, y - my
    d = torch.linalg.vector_norm(mx - my)
    for j in range(2, k + 1):
        d = d + torch.linalg.vector_norm((cx ** j).mean(0) - (cy ** j).mean(0))
    return d


def batch_loss(pred: torch.Tensor, y: torch.Tensor, group_ids: torch.Tensor, latency_s: torch.Tensor,
               label_transform: LabelTransform, cfg: TrainConfig) -> torch.Tensor:
    """The configured training loss of one batch (``cfg.loss``), without the domain regularizer."""
    if cfg.loss == "mse+mape":
        mse = torch.mean((pred - y) ** 2)
        return mse + cfg.mape_weight * mape_loss(pred, latency_s, label_transform).to(mse.dtype)
    return regression_loss(pred, y, group_ids, cfg.rank_loss_weight)


# ------------------------------------------------------------------------------------------- data helpers

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


def fit_work_offset(model: CDMPPNet, asts: list[CompactAST], label_transform: LabelTransform) -> None:
    """Centre the model's work offset on the training programs' mean ln(work)."""
    works = []
    for i in range(0, len(asts), 4096):
        feats, _, mask, _ = to_tensors(asts[i:i + 4096], None, torch.device("cpu"))
        works.append(log_work(feats, mask))
    model.set_work_offset(float(torch.cat(works).double().mean()), label_transform.std)


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """The random stream of one epoch: depends only on (seed, epoch, stream), so a resumed run and a
    straight run shuffle alike, and all ranks draw the same permutation (stream 0)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 101 + stream)


# -------------------------------------------------------------------------------------------- distributed

@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call created the process group (and must destroy it)


def init_distributed(backend: str | None = None) -> DistContext:
    """Join the torchrun process group when ``WORLD_SIZE`` > 1 (no-op otherwise, or when already joined).
    Backend: ``backend``, else "nccl" with CUDA and "gloo" without."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistContext()
    import torch.distributed as dist

    owns = False
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
        owns = True
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), owns)


def _torch_device(requested: str, ctx: DistContext) -> torch.device:
    dev = default_torch_device(requested)
    if ctx.world_size > 1 and dev.type == "cuda":  # one GPU per rank
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev


# -------------------------------------------------------------------------------------- training state

def save_training_state(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file in the same directory, then rename it over
    ``path``: a kill leaves the previous state or the new one, never half a file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | os.PathLike) -> dict:
    """A training state written by ``train``; only tensors and plain values (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable training state: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{path}: not a cdmpp-tvm training state")
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise UserError(f"{path}: training state version {state.get('format_version')}, this cdmpp-tvm reads "
                         f"version {STATE_FORMAT_VERSION}")
    return state


def _cpu_state_dict(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


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
        if ctx.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(data, model_cfg, cfg, model, label_transform, val_data, on_epoch, target_domain, state_path,
           ctx: DistContext):
    master, world = ctx.rank == 0, ctx.world_size
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    dev = _torch_device(cfg.device, ctx)

    # -- data: validation = whole training tasks; feature scaler and label transform fitted on the rest
    if val_data is None:
        tr_idx, va_idx = split_by_group(data.groups, cfg.val_fraction, cfg.seed)
        data, val_data = data.subset(tr_idx), (data.subset(va_idx) if len(va_idx) else None)
    if val_data is not None and len(val_data) == 0:
        val_data = None
    use_cmd = cfg.cmd_weight > 0
    if use_cmd:
        if target_domain is None or len(target_domain) == 0:
            raise ValueError("train: cmd_weight > 0 needs target-domain programs (train(..., target_domain=...))")
        if (target_domain.device is None) != (data.device is None):
            raise ValueError("train: training and target-domain programs must both have device descriptors or "
                             "both have none")
    elif target_domain is not None:
        logger.warning("train: target_domain given but cmd_weight is 0; the target domain is not used")
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
    local_bs = math.ceil(cfg.batch_size / world)
    global_bs = local_bs * world
    n_padded = math.ceil(n / world) * world
    steps_per_epoch = max(1, math.ceil(n_padded / global_bs))
    total_steps = cfg.epochs * steps_per_epoch

    def lr_at(step: int) -> float:  # linear warm-up, then cosine decay to 5% of the peak
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))

    # -- state: fresh, or resumed from state_path
    history = {"train_loss": [], "val_loss": [], "val_mape": [], "cmd": [], "best_epoch": -1, "stopped": "epochs",
               "seconds": 0.0, "world_size": world, "samples_seen": 0}
    best, best_state, bad_epochs, step, start_epoch = float("inf"), None, 0, 0, 0
    if state_path is not None and os.path.exists(state_path):
        state = load_training_state(state_path)
        if state["model_config"] != model.cfg.to_dict():
            raise UserError(f"{state_path}: training state of another model config {state['model_config']}; "
                             f"this run's is {model.cfg.to_dict()}")
        if state["n_train"] != n or state["n_val"] != (0 if val_data is None else len(val_data)):
            raise UserError(f"{state_path}: training state of {state['n_train']} training / {state['n_val']} "
                             f"validation programs, but this run has {n} / {0 if val_data is None else len(val_data)}; "
                             "remove the state file to start over")
        changed = sorted(k for k, v in state["train_config"].items()
                         if k not in ("epochs", "time_limit_s", "progress", "checkpoint_every", "device")
                         and getattr(cfg, k, v) != v)
        if changed:
            logger.warning("%s: resuming with changed settings %s; the run will not match an uninterrupted one",
                           state_path, changed)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        label_transform = LabelTransform.from_dict(state["label_transform"])
        y_all = torch.tensor(label_transform.transform(data.latencies), dtype=torch.float32)
        best, bad_epochs, step = float(state["best_loss"]), int(state["bad_epochs"]), int(state["step"])
        best_state = state["best_state"] or None
        history = {**state["history"], "world_size": world}
        start_epoch = int(state["epoch"]) + 1
        torch.set_rng_state(state["torch_rng"])
        if torch.cuda.is_available() and len(state.get("cuda_rng", [])) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        if history["stopped"] == "early" or start_epoch >= cfg.epochs:
            start_epoch = cfg.epochs  # that run had finished: nothing left to do
        elif master:
            logger.info("Resuming training from %s after epoch %d", state_path, start_epoch - 1)

    def training_state(epoch: int) -> dict:
        return {"format": STATE_FORMAT, "format_version": STATE_FORMAT_VERSION, "epoch": epoch, "step": step,
                "model_config": model.cfg.to_dict(), "train_config": cfg.to_dict(), "n_train": n,
                "n_val": 0 if val_data is None else len(val_data), "model": _cpu_state_dict(model),
                "optimizer": opt.state_dict(), "best_state": best_state or {}, "best_loss": best,
                "bad_epochs": bad_epochs, "history": history, "label_transform": label_transform.to_dict(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}

    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Without device descriptors the device embedding gets no gradient: tell DDP not to wait for it.
        net = DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None,
                                      find_unused_parameters=data.device is None)

    # -- the loop
    with tqdm(total=cfg.epochs, initial=start_epoch, desc="train", unit="epoch", dynamic_ncols=True,
              disable=not (cfg.progress and master)) as bar:
        start, seconds_before = time.perf_counter(), float(history["seconds"])
        for epoch in range(start_epoch, cfg.epochs):
            net.train()
            perm = torch.randperm(n, generator=epoch_generator(cfg.seed, epoch))  # the same on every rank
            if n_padded > n:
                perm = torch.cat([perm, perm[:n_padded - n]])
            target_gen = epoch_generator(cfg.seed, epoch, 1 + ctx.rank)
            sums = torch.zeros(3, dtype=torch.float64)  # loss x programs, cmd x programs, programs
            for b in range(steps_per_epoch):
                idx = perm[b * global_bs:(b + 1) * global_bs][ctx.rank::world].numpy()  # this rank's shard
                asts = [data.asts[i] for i in idx]
                devv = None if data.device is None else data.device[idx]
                if use_cmd:  # target programs ride along in the same forward pass (one DDP forward per step)
                    t_idx = torch.randperm(len(target_domain), generator=target_gen)[:cfg.cmd_batch_size].numpy()
                    asts += [target_domain.asts[i] for i in t_idx]
                    if devv is not None:
                        devv = np.concatenate([devv, target_domain.device[t_idx]])
                feats, pos, mask, devt = to_tensors(asts, devv, dev)
                for g in opt.param_groups:
                    g["lr"] = lr_at(step)
                if use_cmd:
                    pred, _, z = net(feats, pos, mask, devt, return_program_embedding=True)
                else:
                    pred, z = net(feats, pos, mask, devt)
                k = len(idx)
                loss = batch_loss(pred[:k], y_all[idx].to(dev), gid_all[idx].to(dev), lat_all[idx].to(dev),
                                  label_transform, cfg)
                total = loss
                if use_cmd:
                    cmd = central_moment_discrepancy(z[:k], z[k:])
                    total = loss + cfg.cmd_weight * cmd
                    sums[1] += cmd.item() * k
                opt.zero_grad(set_to_none=True)
                total.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sums[0] += loss.item() * k
                sums[2] += k
                step += 1
            history["samples_seen"] += int(sums[2])
            if world > 1:
                import torch.distributed as dist

                sums = sums.to(dev)
                dist.all_reduce(sums)
                sums = sums.cpu()
            train_loss = float(sums[0] / sums[2])

            # Validation on rank 0; every rank then does the same bookkeeping with the broadcast numbers.
            verdict = torch.zeros(3, dtype=torch.float64)  # val loss, val MAPE, out of time
            if master:
                if val_data is not None:
                    ev = evaluate(model, val_data, label_transform, cfg, dev)
                    verdict[0], verdict[1] = ev["loss"], ev["mape"]
                else:
                    verdict[0], verdict[1] = train_loss, float("nan")
                verdict[2] = float(cfg.time_limit_s is not None and time.perf_counter() - start > cfg.time_limit_s)
            if world > 1:
                import torch.distributed as dist

                verdict = verdict.to(dev)
                dist.broadcast(verdict, src=0)
                verdict = verdict.cpu()
            val_loss, val_mape, out_of_time = float(verdict[0]), float(verdict[1]), bool(verdict[2])
            history["train_loss"].append(train_loss)
            history["val_loss"].append(val_loss)
            history["val_mape"].append(val_mape)
            history["cmd"].append(float(sums[1] / sums[2]) if use_cmd else 0.0)
            if val_loss < best - 1e-6 or epoch < cfg.min_epochs:
                best, bad_epochs, history["best_epoch"] = val_loss, 0, epoch
                best_state = _cpu_state_dict(model)
            else:
                bad_epochs += 1
            stop = ("early" if bad_epochs >= cfg.patience else "time_limit" if out_of_time
                    else "epochs" if epoch == cfg.epochs - 1 else None)
            if stop:
                history["stopped"] = stop
            history["seconds"] = seconds_before + time.perf_counter() - start
            bar.update(1)
            bar.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", refresh=False)
            if master and state_path is not None and (stop or (epoch + 1) % cfg.checkpoint_every == 0):
                save_training_state(state_path, training_state(epoch))
            if master and on_epoch is not None:
                on_epoch(epoch, model, history)
            if stop:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return model, label_transform, history


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
                sel = torch.from_numpy(sel)
                dy = t[sel].unsqueeze(0) - t[sel].unsqueeze(1)
                pairs = dy.abs() > 1e-3
                dp = p[sel].unsqueeze(0) - p[sel].unsqueeze(1)
                rank_sum += float(torch.nn.functional.softplus(-torch.sign(dy[pairs]) * dp[pairs]).sum())
                n_pairs += int(pairs.sum())
            if n_pairs:
                loss += cfg.rank_loss_weight * rank_sum / n_pairs
    return {"loss": float(loss), "mape": mape}


def evaluate_loss(model: CDMPPNet, data: TrainingData, label_transform: LabelTransform, cfg: TrainConfig,
                  dev: torch.device) -> float:
    return evaluate(model, data, label_transform, cfg, dev)["loss"]
