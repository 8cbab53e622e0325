"""What ``CDMPPCostModel`` learns from measurements while it tunes.

* ``ReplayBuffer``: the measured programs (compact AST, latency or None for a failed run, task key),
  and the one rule that turns a failure into a label: ``failure_latency_factor`` x the slowest valid
  latency measured for that task (no label while the task has none).
* ``Guard``: per task, moving average of the pairwise ranking accuracy of the pretrained ("anchor")
  model, the online model and the task's boosted learner (``boosted``) on fresh batches; predictions
  come from whichever ranks the task's fresh measurements better.
* ``LatencyCalibration``: per model and task, exp(median log(measured / predicted)), the factor that
  ``predict_latency`` applies (the ranking, hence the scores, never changes).
* ``train_online_steps``: the bounded online training of one ``update`` call.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..evaluation import log_ratios
from ..features import CompactAST
from ..model import CDMPPNet
from ..model.inference import to_tensors
from ..model.losses import regression_loss

logger = logging.getLogger("cdmpp_tvm.cost_model")


@dataclass
class OnlineConfig:
    enabled: bool = True
    lr: float = 2e-4
    # 8 steps / 0.5 s per update() call: in the pool replay on 60 unseen tasks, 32 steps / 2 s found the
    # best programs no more often (within noise) at 3.5x the update time, and the per-task boosted learner
    # does most of the task's learning (benchmarks/results/experiments.md, online_replay-*-short).
    max_steps_per_update: int = 8
    time_budget_s: float = 0.5
    batch_size: int = 128
    rank_loss_weight: float = 1.0
    buffer_size: int = 20_000  # measured programs kept for replay
    failure_latency_factor: float = 2.0
    guard_momentum: float = 0.7  # moving averages of each model's ranking accuracy and spreads on fresh batches
    calibration_window: int = 256  # latest fresh measurements per task that set its latency calibration


# One measured program: (compact AST, latency in seconds or None for a failed run, task key).
Item = tuple[CompactAST, "float | None", str]


class ReplayBuffer:
    """The latest ``capacity`` measured programs, oldest first."""

    def __init__(self, capacity: int, failure_latency_factor: float):
        self.items: list[Item] = []
        self.capacity = capacity
        self.failure_latency_factor = failure_latency_factor

    def __len__(self) -> int:
        return len(self.items)

    def extend(self, batch: list[Item]) -> None:
        self.items.extend(batch)
        if len(self.items) > self.capacity:
            del self.items[: len(self.items) - self.capacity]

    def labels(self, items: list[Item]) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``items`` that have a label, those labels in seconds): a valid latency is its own
        label, a failure is factor x its task's slowest valid latency in the buffer, and a failure of a
        task with no valid latency yet has no label (nothing to place it on)."""
        worst: dict[str, float] = {}
        for _, lat, task in self.items:
            if lat is not None:
                worst[task] = max(worst.get(task, 0.0), lat)
        keep, lats = [], []
        for i, (_, lat, task) in enumerate(items):
            if lat is None:
                if task not in worst:
                    continue
                lat = worst[task] * self.failure_latency_factor
            keep.append(i)
            lats.append(lat)
        return np.asarray(keep, dtype=int), np.asarray(lats)


def moving_average(averages: dict[str, float], name: str, value: float, momentum: float) -> None:
    """``averages[name]`` <- momentum x itself + (1 - momentum) x ``value``; a first value starts it."""
    averages[name] = value if name not in averages else momentum * averages[name] + (1 - momentum) * value


class Guard:
    """Which model predicts a task: the one that ranked that task's measured programs best.

    Per task and model, a moving average (``momentum``) of the pairwise ranking accuracy on fresh batches
    (programs no model had learnt from when it predicted them); a model's first observation on a task
    starts its average. The boosted learner of a task, fitted before it ever saw a fresh batch, enters
    with its out-of-fold accuracy on the task's measured programs (``enter``). A task nobody tracked
    yet (the first round of a new task) follows the global online-vs-anchor average, started at 0.5
    each. Ties go to the learner of the task, then the online model: ``PREFERENCE``.
    """

    PREFERENCE = ("boosted", "online", "anchor")

    def __init__(self, momentum: float):
        self.momentum = momentum
        self.accuracy = {"online": 0.5, "anchor": 0.5}  # over all tasks
        self.per_task: dict[str, dict[str, float]] = {}

    def track(self, task: str, predictions: dict[str, np.ndarray], labels: np.ndarray) -> None:
        """Predictions of the same fresh programs by each model (name -> (N,)) and their labels (N,)."""
        if len(labels) < 2 or np.ptp(labels) == 0:
            return
        m = self.momentum
        mine = self.per_task.setdefault(task, {})
        for name, pred in predictions.items():
            acc = pairwise_accuracy(pred, labels)
            moving_average(mine, name, acc, m)
            if name in self.accuracy:
                moving_average(self.accuracy, name, acc, m)

    def enter(self, task: str, name: str, accuracy: float) -> None:
        """A model's first estimate on ``task`` (kept if fresh batches already tracked it)."""
        self.per_task.setdefault(task, {}).setdefault(name, accuracy)

    def task_accuracy(self, task: str, name: str) -> float | None:
        """``name``'s moving-average accuracy on ``task`` (None before any evidence there)."""
        return self.per_task.get(task, {}).get(name)

    def choose(self, task: str, available: tuple[str, ...] = ("online", "anchor")) -> str:
        """The model to predict ``task`` with, among ``available``."""
        mine = {k: v for k, v in self.per_task.get(task, {}).items() if k in available}
        known = mine or {k: v for k, v in self.accuracy.items() if k in available}
        if not known:
            return next(n for n in self.PREFERENCE if n in available)
        best = max(known.values())
        return next(n for n in self.PREFERENCE if known.get(n) == best)

    def prefers_anchor(self) -> bool:
        """Over all tasks, the pretrained model ranks fresh batches better than the online one."""
        return self.accuracy["anchor"] > self.accuracy["online"]


class LatencyCalibration:
    """log(measured / predicted) per model ("online", "anchor") and task; the anchor's from its predictions of
    fresh batches (it is frozen, so they stay valid), the online model's recomputed after training."""

    def __init__(self, window: int):
        self.window = window
        self.residuals: dict[str, dict[str, list[float]]] = {"online": {}, "anchor": {}}

    def add_anchor(self, batch: list[Item], anchor: np.ndarray) -> None:
        for (_, _, task), r in zip(batch, log_ratios([lat for _, lat, _ in batch], anchor)):
            if np.isfinite(r):
                res = self.residuals["anchor"].setdefault(task, [])
                res.append(float(r))
                del res[: max(0, len(res) - self.window)]

    def set_online(self, tasks: list[str], measured: list[float], predicted: np.ndarray) -> None:
        residuals: dict[str, list[float]] = {}
        for task, r in zip(tasks, log_ratios(measured, predicted)):
            if np.isfinite(r):
                residuals.setdefault(task, []).append(float(r))
        self.residuals["online"] = residuals

    def factor(self, name: str, task: str) -> float:
        """exp(median log(measured / predicted)) of ``name``'s fresh predictions for ``task`` (all tasks when
        this one has none yet; 1 when nothing was measured)."""
        res = self.residuals[name]
        values = res.get(task) or [r for v in res.values() for r in v[-self.window:]]
        return float(np.exp(np.median(values))) if values else 1.0

    def tasks(self) -> set[str]:
        return set(self.residuals["online"]) | set(self.residuals["anchor"])


def latest_valid_per_task(buffer: ReplayBuffer, window: int, max_items: int) -> list[tuple[str, CompactAST, float]]:
    """(task, AST, latency) of the latest valid measurements: at most ``window`` per task, ``max_items`` in all."""
    per_task: dict[str, list[tuple[CompactAST, float]]] = {}
    n = 0
    for ast, lat, task in reversed(buffer.items):
        if n >= max_items:
            break
        if lat is not None and len(per_task.setdefault(task, [])) < window:
            per_task[task].append((ast, lat))
            n += 1
    return [(task, ast, lat) for task, v in per_task.items() for ast, lat in v]


def train_online_steps(model: CDMPPNet, opt: torch.optim.Optimizer, asts: list[CompactAST], y_all: torch.Tensor,
                       gid_all: torch.Tensor, dev_vec, cfg: OnlineConfig, rng: np.random.Generator,
                       torch_device: torch.device) -> tuple[int, float | None]:
    """At most ``cfg.max_steps_per_update`` steps within ``cfg.time_budget_s`` on the labelled buffer
    (``y_all``: transformed labels, ``gid_all``: task ids for the ranking loss). Half of every step's
    batch is the newest measurements, so each update learns from them. A step whose loss is not finite is
    not taken, and ends the update: -> (steps taken, the non-finite loss or None)."""
    n_new = min(len(asts), 64)
    deadline = time.perf_counter() + cfg.time_budget_s
    steps, bad_loss = 0, None
    model.train()
    for _ in range(cfg.max_steps_per_update):
        if time.perf_counter() > deadline:
            break
        k = min(cfg.batch_size, len(asts))
        old = rng.choice(len(asts), size=max(0, k - n_new // 2), replace=len(asts) < k)
        new = np.arange(len(asts) - n_new, len(asts))[rng.permutation(n_new)[: n_new // 2]]
        idx = np.unique(np.concatenate([old, new]))
        feats, pos, mask, dv = to_tensors([asts[i] for i in idx], dev_vec, torch_device)
        pred, _ = model(feats, pos, mask, dv)
        loss = regression_loss(pred, y_all[idx].to(torch_device), gid_all[idx].to(torch_device),
                               cfg.rank_loss_weight)
        if not torch.isfinite(loss):
            # One NaN step would make every later prediction NaN: skip it, and the rest of this update.
            bad_loss = loss.item()
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
    model.eval()
    return steps, bad_loss


def fresh_batch_error(batch: list[Item], used: np.ndarray, pretrained: np.ndarray) -> dict | None:
    """Of a measured batch's valid programs, predicted before learning from them: the MAPE of ``used``
    (what the cost model would have said), of ``pretrained`` (the checkpoint as loaded) and the pairwise
    accuracy of ``used``; None when the batch has no valid program."""
    valid = np.asarray([i for i, (_, lat, _) in enumerate(batch) if lat is not None], dtype=int)
    if not len(valid):
        return None
    true = np.asarray([batch[i][1] for i in valid])
    used, pretrained = used[valid], pretrained[valid]
    return {"n": len(valid), "mape": float(np.mean(np.abs(used - true) / true)),
            "pretrained_mape": float(np.mean(np.abs(pretrained - true) / true)),
            "pairwise_accuracy": pairwise_accuracy(used, true) if len(valid) > 1 and np.ptp(true) > 0 else None}


def pairwise_accuracy(pred: np.ndarray, true: np.ndarray) -> float:
    """Fraction of pairs with different true latency that the prediction orders correctly."""
    dp = np.sign(pred[:, None] - pred[None, :])
    dt = np.sign(true[:, None] - true[None, :])
    valid = dt != 0
    return float((dp[valid] == dt[valid]).mean()) if valid.any() else 0.5
