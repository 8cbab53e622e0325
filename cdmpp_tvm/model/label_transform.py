"""Latency <-> regression target. Fitted on training latencies only; saved as plain numbers.

``log``: y = (ln(latency) - mean) / std. ``box-cox``: sklearn's PowerTransformer(method="box-cox")
fitted, then stored as (lambda, mean, std) so a checkpoint needs no pickled sklearn object.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.preprocessing import PowerTransformer

METHODS = ("log", "box-cox")


@dataclass
class LabelTransform:
    method: str = "log"
    lmbda: float = 0.0
    mean: float = float(np.log(1e-3))  # an unfitted transform centres on 1 ms
    std: float = 2.0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"label transform method must be one of {METHODS}, got {self.method!r}")

    @classmethod
    def fit(cls, latencies: np.ndarray, method: str = "log") -> "LabelTransform":
        lat = _check_latencies(latencies)
        if method == "box-cox":
            pt = PowerTransformer(method="box-cox", standardize=True).fit(lat.reshape(-1, 1))
            lmbda = float(pt.lambdas_[0])
            z = _box_cox(lat, lmbda)
        else:
            lmbda = 0.0
            z = np.log(lat)
        return cls(method, lmbda, float(z.mean()), float(max(z.std(), 1e-6)))

    def transform(self, latencies: np.ndarray) -> np.ndarray:
        lat = _check_latencies(latencies)
        z = _box_cox(lat, self.lmbda) if self.method == "box-cox" else np.log(lat)
        return (z - self.mean) / self.std

    def inverse(self, y: np.ndarray) -> np.ndarray:
        z = np.asarray(y, dtype=np.float64) * self.std + self.mean
        if self.method == "box-cox" and abs(self.lmbda) > 1e-12:
            # Keep the base positive: predictions outside the fitted range must still map to a latency.
            return np.power(np.maximum(z * self.lmbda + 1.0, 1e-12), 1.0 / self.lmbda)
        return np.exp(z)

    def inverse_torch(self, y):
        """``inverse`` for a torch tensor, differentiable (a loss on latency in seconds backpropagates
        through it). Same clamping of the Box-Cox base as ``inverse``."""
        z = y * self.std + self.mean
        if self.method == "box-cox" and abs(self.lmbda) > 1e-12:
            return torch.pow(torch.clamp(z * self.lmbda + 1.0, min=1e-12), 1.0 / self.lmbda)
        return torch.exp(z)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LabelTransform":
        return cls(**d)


def _box_cox(x: np.ndarray, lmbda: float) -> np.ndarray:
    return np.log(x) if abs(lmbda) < 1e-12 else (np.power(x, lmbda) - 1.0) / lmbda


def _check_latencies(latencies) -> np.ndarray:
    lat = np.asarray(latencies, dtype=np.float64).reshape(-1)
    if lat.size == 0:
        raise ValueError("no latencies given")
    if not np.all(np.isfinite(lat)) or np.any(lat <= 0):
        raise ValueError("latencies must be finite and > 0 seconds")
    return lat
