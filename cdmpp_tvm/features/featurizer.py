"""Featurize MetaSchedule candidates into compact ASTs; with the Python walker, through a cache keyed by
structural hash.

The evolutionary search scores the same schedules again and again (survivors of each generation, the
measured top programs it re-seeds from). With the Python walker (~0.5-2 ms a program) featurizing each
distinct program once pays off; the compiled walker (``native.py``, ~0.05 ms) is cheaper than the
structural hash that keys the cache (~0.1 ms on a conv2d), so with it every program is featurized afresh.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import tvm_ffi

from .compact_ast import CompactAST
from .native import extract_compact_ast, native_loaded
from .schema import FEATURE_DIM


@dataclass
class LeafBatch:
    """A padded batch of programs. ``features``: (B, L, FEATURE_DIM) float32; ``positions``: (B, L) int64
    pre-order positions; ``mask``: (B, L) bool, True for real leaves. L = the largest leaf count in the
    batch: programs are padded, never truncated or dropped."""

    features: np.ndarray
    positions: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return int(self.features.shape[0])


def collate(asts: list[CompactAST]) -> LeafBatch:
    if not asts:
        raise ValueError("collate needs at least one program")
    n_leaves = max(a.n_leaves for a in asts)
    feats = np.zeros((len(asts), n_leaves, FEATURE_DIM), dtype=np.float32)
    pos = np.zeros((len(asts), n_leaves), dtype=np.int64)
    mask = np.zeros((len(asts), n_leaves), dtype=bool)
    for i, a in enumerate(asts):
        k = a.n_leaves
        feats[i, :k] = a.leaf_features
        pos[i, :k] = a.preorder_position
        mask[i, :k] = True
    return LeafBatch(feats, pos, mask)


class CompactASTFeaturizer:
    """``featurize(mods, is_gpu) -> list[CompactAST]`` for scheduled IRModules (``cand.sch.mod``).

    ``cache``: keep an LRU cache of ``cache_size`` programs keyed by (structural hash, is_gpu); None (the
    default) = only while the Python walker is in use. Uncached programs are counted in ``uncached``."""

    def __init__(self, cache_size: int = 100_000, cache: bool | None = None):
        self.cache_size = cache_size
        self.cache = cache
        self._cache: OrderedDict[tuple[int, bool], CompactAST] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.uncached = 0
        self.seconds = 0.0

    def featurize(self, mods: list, is_gpu: bool) -> list[CompactAST]:
        start = time.perf_counter()
        if not self._caching():
            out = [extract_compact_ast(mod["main"], is_gpu) for mod in mods]
            self.uncached += len(out)
            self.seconds += time.perf_counter() - start
            return out
        out = []
        for mod in mods:
            key = (tvm_ffi.structural_hash(mod), is_gpu)
            ast = self._cache.get(key)
            if ast is None:
                self.misses += 1
                ast = extract_compact_ast(mod["main"], is_gpu)
                self._cache[key] = ast
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
            else:
                self.hits += 1
                self._cache.move_to_end(key)
            out.append(ast)
        self.seconds += time.perf_counter() - start
        return out

    def _caching(self) -> bool:
        return self.cache if self.cache is not None else not native_loaded()

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
