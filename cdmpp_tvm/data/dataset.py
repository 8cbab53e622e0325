"""The dataset type that training, fine-tuning and the baselines read (``TrainingData``: programs, their
latencies, tasks and devices), and the validation split made of whole tasks (``split_by_group``)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import CompactAST


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


def split_by_group(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with whole groups in val; val is empty when there are fewer than 2 groups."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    n_val = int(round(len(uniq) * fraction)) if len(uniq) >= 2 else 0
    n_val = min(max(n_val, 1 if len(uniq) >= 2 and fraction > 0 else 0), len(uniq) - 1) if len(uniq) >= 2 else 0
    val_groups = set(rng.choice(uniq, size=n_val, replace=False).tolist()) if n_val else set()
    is_val = np.array([g in val_groups for g in groups])
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]
