"""The learner of the task at hand: gradient-boosted trees on the task's measured programs, fitted to the
residual of the pretrained model. The pretrained log latency is the trees' base (xgboost's
``base_margin``) and one of their inputs.

Why a residual: before the first measurement of a task the pretrained model is all there is; once a
task has measurements, MetaSchedule's XGBModel learns that one task better than a transformer can be
fine-tuned in one update's budget. Boosting from the pretrained prediction (log latency) as the base keeps the prior
where the task's programs say nothing and corrects it where they do: with no trees it *is* the
pretrained model.

    X = program_vectors(asts, embeddings)  # (N, n_features) float32, see program_vectors
    booster = TaskBooster(cfg).fit(X, log_latency, base)  # base: pretrained log latency (N,)
    booster.predict(X_new, base_new) -> log latency (M,)

Inputs per program: the compact AST's first ``first_leaves`` leaf (store) feature rows in preorder, the sum
over all leaves, the number of leaves, and the pretrained model's program embedding (``embed_dim``), all
flattened. A task's candidates share their store structure, so leaf *i* is the same store across them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sklearn.model_selection import KFold

from ..features import FEATURE_DIM, CompactAST
from .online import pairwise_accuracy


@dataclass
class BoostedConfig:
    enabled: bool = True
    min_programs: int = 8  # labelled programs of a task before its first fit
    max_programs: int = 2048  # latest labelled programs of a task a fit uses (bounds the update time)
    first_leaves: int = 4
    use_embedding: bool = True  # the pretrained model's program embedding as inputs too
    n_estimators: int = 60
    max_depth: int = 4
    learning_rate: float = 0.2
    subsample: float = 0.9
    colsample_bytree: float = 0.5
    min_child_weight: float = 1.0
    nthread: int = 1  # inside a tuner the builder and runner use the other cores


def program_vectors(asts: list[CompactAST], embeddings: np.ndarray | None, first_leaves: int) -> np.ndarray:
    """(N, first_leaves * F + F + 1 [+ embed_dim]) float32 inputs of the boosted trees (module docstring)."""
    n = len(asts)
    head = np.zeros((n, first_leaves, FEATURE_DIM), dtype=np.float32)
    total = np.zeros((n, FEATURE_DIM), dtype=np.float32)
    n_leaves = np.zeros((n, 1), dtype=np.float32)
    for i, ast in enumerate(asts):
        leaves = ast.leaf_features[np.argsort(ast.preorder_position, kind="stable")]
        k = min(first_leaves, len(leaves))
        head[i, :k] = leaves[:k]
        total[i] = leaves.sum(axis=0)
        n_leaves[i] = len(leaves)
    parts = [head.reshape(n, -1), total, n_leaves]
    if embeddings is not None:
        if embeddings.shape[0] != n:
            raise ValueError(f"program_vectors: {n} programs but {embeddings.shape[0]} embeddings")
        parts.append(embeddings.astype(np.float32, copy=False))
    return np.concatenate(parts, axis=1)


class TaskBooster:
    """Boosted trees of one task on the log-latency residual of the pretrained model."""

    def __init__(self, cfg: BoostedConfig, seed: int = 0):
        self.cfg = cfg
        self.seed = seed
        self.booster: xgb.Booster | None = None

    def fit(self, x: np.ndarray, log_latency: np.ndarray, base: np.ndarray) -> "TaskBooster":
        """``x``: (N, n_features); ``log_latency``, ``base`` (pretrained log latency): (N,). Refits from scratch."""
        x, base, log_latency = _validate(x, base, log_latency)
        c = self.cfg
        params = {"objective": "reg:squarederror", "max_depth": c.max_depth, "eta": c.learning_rate,
                  "subsample": c.subsample, "colsample_bytree": c.colsample_bytree,
                  "min_child_weight": c.min_child_weight, "nthread": c.nthread, "seed": self.seed,
                  "tree_method": "hist", "verbosity": 0}
        data = xgb.DMatrix(_with_base(x, base), label=log_latency, base_margin=base, nthread=c.nthread)
        self.booster = xgb.train(params, data, num_boost_round=c.n_estimators)
        return self

    def predict(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Predicted log latency (N,) of programs ``x`` whose pretrained log latency is ``base``."""
        if self.booster is None:
            raise RuntimeError("TaskBooster.predict before fit")
        x, base = _validate(x, base)
        return self.booster.predict(xgb.DMatrix(_with_base(x, base), base_margin=base, nthread=self.cfg.nthread),
                                    output_margin=True).astype(np.float64)


class BoostedLearner:
    """One ``TaskBooster`` per task, refitted on the task's measured programs after every update.

    A failed run is learnt as ``failure_latency_factor`` x the task's slowest valid latency (as the
    online model learns it); a task's first fit also returns the out-of-fold pairwise accuracy of
    boosters fitted the same way (``cv_folds``-fold), the guard's first evidence for it."""

    def __init__(self, cfg: BoostedConfig, failure_latency_factor: float, seed: int = 0, cv_folds: int = 4):
        self.cfg = cfg
        self.failure_latency_factor = failure_latency_factor
        self.seed = seed
        self.cv_folds = cv_folds
        self.programs: dict[str, tuple[list[np.ndarray], list[float], list[float | None]]] = {}
        self.boosters: dict[str, TaskBooster] = {}
        self.fit_seconds = 0.0
        self.fits = 0

    def add(self, task: str, x: np.ndarray, base: np.ndarray, latencies: list[float | None]) -> None:
        """Measured programs of ``task``: vectors (N, n_features), pretrained log latency (N,), latency in
        seconds or None for a failed run (N,). Only the latest ``max_programs`` are kept."""
        rows, bases, lats = self.programs.setdefault(task, ([], [], []))
        rows.extend(np.asarray(x, dtype=np.float32))
        bases.extend(np.asarray(base, dtype=np.float64).tolist())
        lats.extend(latencies)
        extra = len(rows) - self.cfg.max_programs
        if extra > 0:
            del rows[:extra], bases[:extra], lats[:extra]

    def has_model(self, task: str) -> bool:
        return task in self.boosters

    def fit(self, task: str, cross_validate: bool = False) -> float | None:
        """Refit ``task``'s booster once it has ``min_programs`` labelled programs; with ``cross_validate``
        -> the mean out-of-fold pairwise accuracy (None when not fitted or not computed)."""
        x, y, base = self._labelled(task)
        if len(y) < self.cfg.min_programs or np.ptp(y) == 0:
            return None
        start = time.perf_counter()
        oof = None
        if cross_validate:
            folds = KFold(n_splits=min(self.cv_folds, len(y) // 2), shuffle=True, random_state=self.seed)
            scores = [pairwise_accuracy(TaskBooster(self.cfg, self.seed).fit(x[tr], y[tr], base[tr]).predict(x[te], base[te]), y[te])
                      for tr, te in folds.split(x) if np.ptp(y[te]) > 0]
            oof = float(np.mean(scores)) if scores else None
        self.boosters[task] = TaskBooster(self.cfg, self.seed).fit(x, y, base)
        self.fit_seconds += time.perf_counter() - start
        self.fits += 1
        return oof

    def predict(self, task: str, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Predicted log latency (N,) of ``task``'s programs ``x`` with pretrained log latency ``base``."""
        return self.boosters[task].predict(x, base)

    def _labelled(self, task: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows, bases, lats = self.programs.get(task, ([], [], []))
        valid = [lat for lat in lats if lat is not None]
        if not valid:
            return np.zeros((0, 0), np.float32), np.zeros(0), np.zeros(0)
        failed = max(valid) * self.failure_latency_factor
        y = np.log([failed if lat is None else lat for lat in lats])
        return np.stack(rows), y, np.asarray(bases)


def _with_base(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The base prediction is also an input: a residual that depends on it (the prior is right on some
    programs and wrong, in a consistent direction, on others) is then one split away."""
    return np.concatenate([x, base[:, None].astype(np.float32)], axis=1)


def _validate(x: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"TaskBooster: x must be (N, n_features), got shape {x.shape}")
    out = [x]
    for col in columns:
        col = np.asarray(col, dtype=np.float64)
        if col.shape != (len(x),):
            raise ValueError(f"TaskBooster: expected ({len(x)},) per-program values, got shape {col.shape}")
        if not np.all(np.isfinite(col)):
            raise ValueError("TaskBooster: non-finite label or base prediction")
        out.append(col)
    return tuple(out)
