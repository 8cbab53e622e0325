"""Input checks shared by the baselines: a program is a (n_rows, n_features) array of feature rows.

``X`` is a list of N such arrays (any number of rows each, zero included, the same ``n_features``);
``latency_s`` is (N,) seconds, finite and > 0; ``groups`` is (N,) task of each program.
"""
from __future__ import annotations

import numpy as np


def check_programs(X, n_features: int | None = None, who: str = "") -> list[np.ndarray]:
    """X as a list of float32 (n_rows, n_features) arrays; raises ValueError on a wrong shape or a
    non-finite value. ``n_features``: the expected width (that of the fitted data) or None."""
    if isinstance(X, np.ndarray) and X.ndim != 1:
        raise ValueError(f"{who}: X must be a list of (n_rows, n_features) arrays, one per program, "
                         f"not one {X.shape} array")
    programs = [np.asarray(x, dtype=np.float32) for x in X]
    if not programs:
        raise ValueError(f"{who}: X holds no programs")
    for i, x in enumerate(programs):
        if x.ndim != 2:
            raise ValueError(f"{who}: program {i} must be a (n_rows, n_features) array, got shape {x.shape}")
        width = n_features if n_features is not None else programs[0].shape[1]
        if x.shape[1] != width:
            raise ValueError(f"{who}: program {i} has {x.shape[1]} features per row, expected {width}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{who}: program {i} has non-finite features")
    return programs


def check_targets(programs: list[np.ndarray], latency_s, groups, who: str = "") -> tuple[np.ndarray, np.ndarray]:
    latency_s = np.asarray(latency_s, dtype=np.float64)
    if latency_s.shape != (len(programs),):
        raise ValueError(f"{who}: latency_s must have shape ({len(programs)},) for {len(programs)} programs, "
                         f"got {latency_s.shape}")
    if not np.all(np.isfinite(latency_s)) or np.any(latency_s <= 0):
        raise ValueError(f"{who}: latency_s must be finite and > 0 seconds")
    groups = np.zeros(len(programs), dtype=int) if groups is None else np.asarray(groups)
    if groups.shape != (len(programs),):
        raise ValueError(f"{who}: groups must have shape ({len(programs)},), got {groups.shape}")
    return latency_s, groups


def pack(programs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """-> (rows (M, n_features), program index of each row (M,)): the "pack-sum" layout."""
    counts = np.array([len(x) for x in programs])
    rows = np.concatenate(programs) if counts.sum() else np.zeros((0, programs[0].shape[1]), np.float32)
    return rows, np.repeat(np.arange(len(programs)), counts)
