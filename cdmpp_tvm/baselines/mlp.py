"""TenSet-style MLP baseline: per-row MLP, sum over the program's rows, MLP head -> log latency.

The design of TenSet's MLP (and of MetaSchedule's ``SegmentSumMLP``): each ``PerStoreFeature`` row of a
program goes through the same MLP encoder, the row embeddings are **summed** per program (a program's
cost grows with what it stores), and a head maps the sum to the prediction. Here the prediction is
the standardized ln(latency in seconds), trained with MSE, so that it gives an absolute latency
(MetaSchedule's normalized-throughput label with LambdaRank needs each task's fastest latency; see
``xgb.py``). Features go through sign(x) * log1p(|x|), then are standardized with training statistics.
AdamW (MetaSchedule's lr 7e-4 and weight decay 1e-6, batch 128, gradient clip 0.5), early stopping on
the validation loss of whole training tasks held out (``val_fraction``).
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..atomic_io import atomic_path
from ..torch_threads import torch_threads
from ..data.dataset import split_by_group
from ._programs import check_programs, check_targets, pack

FORMAT = "cdmpp-tvm-segment-sum-mlp"


@dataclass
class MLPConfig:
    hidden: int = 256
    lr: float = 7e-4
    weight_decay: float = 1e-6
    batch_size: int = 128  # programs
    max_epochs: int = 200
    patience: int = 20  # epochs without a better validation loss before stopping
    grad_clip: float = 0.5
    val_fraction: float = 0.15  # of training tasks
    seed: int = 0
    time_limit_s: float | None = None


class _Net(nn.Module):
    def __init__(self, n_features: int, hidden: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, rows: torch.Tensor, program_of_row: torch.Tensor, n_programs: int) -> torch.Tensor:
        """rows (M, F), program_of_row (M,) -> (n_programs,)"""
        z = self.encoder(rows)
        summed = torch.zeros(n_programs, z.shape[1], dtype=z.dtype, device=z.device).index_add_(0, program_of_row, z)
        return self.head(summed).squeeze(-1)


class SegmentSumMLP:
    """Segment-sum MLP on PerStoreFeature rows -> latency (seconds).

    ``fit(X, latency_s, groups)``: X is a list of N arrays (n_rows_i, n_features), one per program (rows
    may be zero); latency_s (N,) seconds > 0; groups (N,) task of each program (validation holds out
    whole tasks). ``predict(X) -> (N,)`` seconds > 0. ``n_threads``: torch CPU threads while fitting and
    predicting (None: leave torch's setting).
    """

    def __init__(self, config: MLPConfig | None = None, n_threads: int | None = None, device: str = "cpu"):
        self.config = config or MLPConfig()
        self.n_threads = n_threads
        self.device = torch.device(device)
        self.net: _Net | None = None
        self.n_features_in_: int | None = None
        self.feature_mean = self.feature_std = None  # (F,) of the log1p-transformed training rows
        self.label_mean, self.label_std = 0.0, 1.0  # of ln(latency s)
        self.history: dict = {}

    def fit(self, X, latency_s, groups=None) -> "SegmentSumMLP":
        cfg = self.config
        programs = check_programs(X, who="SegmentSumMLP.fit")
        latency_s, groups = check_targets(programs, latency_s, groups, who="SegmentSumMLP.fit")
        self.n_features_in_ = programs[0].shape[1]
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        tr, va = split_by_group(groups, cfg.val_fraction, cfg.seed)
        rows = _log1p(pack([programs[i] for i in tr])[0])
        self.feature_mean = rows.mean(0) if len(rows) else np.zeros(self.n_features_in_, np.float32)
        std = rows.std(0) if len(rows) else np.ones(self.n_features_in_, np.float32)
        self.feature_std = np.where(std > 1e-6, std, 1.0).astype(np.float32)  # constant columns stay as they are
        y = np.log(latency_s)
        self.label_mean, self.label_std = float(y[tr].mean()), float(max(y[tr].std(), 1e-6))
        y = torch.tensor((y - self.label_mean) / self.label_std, dtype=torch.float32)

        self.net = _Net(self.n_features_in_, cfg.hidden).to(self.device)
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        best, best_state, bad_epochs = float("inf"), None, 0
        history = {"train_loss": [], "val_loss": [], "best_epoch": -1, "stopped": "epochs"}
        start = time.perf_counter()
        with torch_threads(self.n_threads):
            for epoch in range(cfg.max_epochs):
                self.net.train()
                order = rng.permutation(tr)
                total = 0.0
                for b in range(0, len(order), cfg.batch_size):
                    idx = order[b:b + cfg.batch_size]
                    pred = self._forward([programs[i] for i in idx])
                    loss = torch.mean((pred - y[idx].to(self.device)) ** 2)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
                    opt.step()
                    total += loss.item() * len(idx)
                history["train_loss"].append(total / len(tr))
                val_loss = self._loss([programs[i] for i in va], y[va]) if len(va) else history["train_loss"][-1]
                history["val_loss"].append(val_loss)
                if val_loss < best - 1e-6:
                    best, bad_epochs, history["best_epoch"] = val_loss, 0, epoch
                    best_state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                else:
                    bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    history["stopped"] = "early"
                    break
                if cfg.time_limit_s is not None and time.perf_counter() - start > cfg.time_limit_s:
                    history["stopped"] = "time_limit"
                    break
        if best_state is not None:  # None only if every validation loss was NaN
            self.net.load_state_dict(best_state)
        self.net.eval()
        history["seconds"] = time.perf_counter() - start
        self.history = history
        return self

    def predict(self, X, batch_size: int = 4096) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("SegmentSumMLP.predict: call fit or load first")
        programs = check_programs(X, self.n_features_in_, who="SegmentSumMLP.predict")
        self.net.eval()
        out = []
        with torch.no_grad(), torch_threads(self.n_threads):
            for b in range(0, len(programs), batch_size):
                out.append(self._forward(programs[b:b + batch_size]).double().cpu().numpy())
        return np.exp(np.concatenate(out) * self.label_std + self.label_mean)

    def _forward(self, programs: list[np.ndarray]) -> torch.Tensor:
        rows, program_of_row = pack(programs)
        rows = (_log1p(rows) - self.feature_mean) / self.feature_std
        return self.net(torch.from_numpy(rows.astype(np.float32)).to(self.device),
                        torch.from_numpy(program_of_row).to(self.device), len(programs))

    @torch.no_grad()
    def _loss(self, programs: list[np.ndarray], y: torch.Tensor) -> float:
        self.net.eval()
        return float(torch.mean((self._forward(programs) - y.to(self.device)) ** 2))

    def save(self, path: str | os.PathLike) -> None:
        """One file of tensors and plain values (loadable with ``torch.load(weights_only=True)``)."""
        if self.net is None:
            raise RuntimeError("SegmentSumMLP.save: nothing fitted")
        payload = {"format": FORMAT, "config": asdict(self.config), "n_features": self.n_features_in_,
                   "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                   "feature_mean": torch.from_numpy(self.feature_mean),
                   "feature_std": torch.from_numpy(self.feature_std),
                   "label_mean": self.label_mean, "label_std": self.label_std}
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu") -> "SegmentSumMLP":
        payload = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise ValueError(f"{path}: not a SegmentSumMLP file (no {FORMAT!r} header)")
        model = cls(MLPConfig(**payload["config"]), device=device)
        model.n_features_in_ = int(payload["n_features"])
        model.net = _Net(model.n_features_in_, model.config.hidden).to(model.device)
        model.net.load_state_dict(payload["state_dict"])
        model.net.eval()
        model.feature_mean = payload["feature_mean"].numpy()
        model.feature_std = payload["feature_std"].numpy()
        model.label_mean, model.label_std = float(payload["label_mean"]), float(payload["label_std"])
        return model


def _log1p(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))
