"""The tree head: boosted trees on the compact AST's leaf features, blended with the transformer.

Prediction of a checkpoint with a tree head of weight w: exp((1 - w) ln p_transformer + w ln p_trees).

Why: on networks it never saw, the transformer ranks some programs badly that trees on per-store
quantities rank well (a BERT dense layer: a program 42x slower than the best, not vectorized and reading
with stride 768, was its first pick; XGB's top-1 there was 0.97; ``benchmarks/results/experiments.md``,
stop 28). On the five leave-networks-out folds (``benchmarks/results/kfold-blend-graded-rank-compact-ast.md``)
w = 0.2 raised Spearman on 5 of 5 folds (0.646 -> 0.666), top-1 on 4 (0.671 -> 0.683) and top-5 on 5
(0.885 -> 0.902), for a MAPE of 153.0 % instead of 152.5 %. The trees are ``XGBBaseline`` (MetaSchedule's
recipe, pack-sum over the program's leaves) on the leaf features the featurizer already computed, so
the tuner pays only their inference.

The trees take no device input: they learn from every training device's records together, and the
transformer carries the device. ``recalibrated`` moves their latency scale to a new device (a constant
in log space, which leaves their ranking unchanged); fine-tuning uses it.
"""
from __future__ import annotations

import numpy as np
import torch

from ..baselines.xgb import XGBBaseline
from ..data.dataset import TrainingData
from ..evaluation import median_log_ratio

LOWEST_LATENCY_S = 1e-12  # floor of both predictions before the log (a label transform may give 0)


class TreeHead:
    """``trees``: a fitted ``XGBBaseline`` on compact-AST leaf features; ``weight``: w in (0, 1]."""

    def __init__(self, trees: XGBBaseline, weight: float):
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"TreeHead: weight must be in (0, 1], got {weight!r}")
        self.trees = trees
        self.weight = float(weight)

    @classmethod
    def fit(cls, data: TrainingData, weight: float, n_threads: int | None = None, seed: int = 0) -> "TreeHead":
        """Trees fitted on every program of ``data`` (its own validation tasks stop the boosting)."""
        trees = XGBBaseline(n_threads=n_threads, seed=seed)
        trees.fit([ast.leaf_features for ast in data.asts], data.latencies, data.groups)
        return cls(trees, weight)

    def predict_latency_s(self, asts: list) -> np.ndarray:
        """(N,) latency in seconds the trees alone predict for N compact ASTs."""
        if not asts:
            return np.zeros(0)
        return self.trees.predict([ast.leaf_features for ast in asts])

    def blend(self, transformer_latency_s: np.ndarray, asts: list, trees_latency_s: np.ndarray | None = None
              ) -> np.ndarray:
        """(N,) seconds: exp((1 - w) ln p_transformer + w ln p_trees) for the same N programs.
        ``trees_latency_s``: ``predict_latency_s(asts)`` when the caller already has it (a batch that
        several transformers score), so the trees run once per batch."""
        p = np.asarray(transformer_latency_s, dtype=np.float64)
        if p.shape != (len(asts),):
            raise ValueError(f"TreeHead.blend: {len(asts)} programs but {p.shape} transformer predictions")
        if not asts:
            return p
        trees = self.predict_latency_s(asts) if trees_latency_s is None else np.asarray(trees_latency_s)
        if trees.shape != p.shape:
            raise ValueError(f"TreeHead.blend: {len(asts)} programs but {trees.shape} tree predictions")
        return blend_latencies(p, trees, self.weight)

    def recalibrated(self, asts: list, latency_s: np.ndarray) -> "TreeHead":
        """A copy whose trees predict on the scale of measured ``latency_s`` of these programs (a new device):
        their intercept moves by the median of ln(measured / predicted). Ranking unchanged."""
        latency_s = np.asarray(latency_s, dtype=np.float64)
        if latency_s.shape != (len(asts),) or not len(asts):
            raise ValueError(f"TreeHead.recalibrated: needs one latency per program, got {latency_s.shape} "
                             f"for {len(asts)} programs")
        shift = median_log_ratio(latency_s, self.predict_latency_s(asts))
        trees = XGBBaseline.from_bytes(self.trees.to_bytes(), "tree head")
        trees.n_threads = self.trees.n_threads
        trees.intercept += shift
        return TreeHead(trees, self.weight)

    def to_state(self) -> dict:
        """Plain values and one uint8 tensor: what ``torch.load(weights_only=True)`` reads back."""
        raw = np.frombuffer(self.trees.to_bytes(), dtype=np.uint8).copy()
        return {"weight": self.weight, "trees_ubj": torch.from_numpy(raw)}

    @classmethod
    def from_state(cls, state: dict, source: str = "checkpoint") -> "TreeHead":
        """ValueError naming ``source`` when ``state`` is not what ``to_state`` wrote."""
        if not isinstance(state, dict) or not {"weight", "trees_ubj"} <= set(state):
            raise ValueError(f"{source}: tree head must hold 'weight' and 'trees_ubj', got {sorted(state or {})}")
        raw = state["trees_ubj"]
        if not torch.is_tensor(raw) or raw.dtype != torch.uint8:
            raise ValueError(f"{source}: tree head 'trees_ubj' must be a uint8 tensor")
        return cls(XGBBaseline.from_bytes(raw.numpy().tobytes(), f"{source}: tree head"), float(state["weight"]))


def blend_latencies(transformer_latency_s: np.ndarray, trees_latency_s: np.ndarray, weight: float) -> np.ndarray:
    """exp((1 - weight) ln transformer + weight ln trees), elementwise, both floored at LOWEST_LATENCY_S."""
    log_transformer, log_trees = (np.log(np.maximum(np.asarray(p, dtype=np.float64), LOWEST_LATENCY_S))
                                  for p in (transformer_latency_s, trees_latency_s))
    return np.exp((1.0 - weight) * log_transformer + weight * log_trees)
