"""The CDMPP predictor: a transformer over a program's compact-AST leaves -> latency.

    leaf features (B, L, F) --standardize--> Linear(F, d_model) + sinusoidal PE(pre-order position)
      -> TransformerEncoder (pre-LN, key padding mask) -> masked mean and max pooling
      -> program embedding (B, embed_dim)  (+ device embedding of the device descriptor)
      -> MLP regressor -> transformed latency (B,)

Differences from the original (see shared/notes/cdmpp-original.md): leaves are padded and masked, so
programs of any leaf count share one model (the original kept only 5-leaf programs); pooling instead
of a per-leaf-count flatten layer; an input projection so d_model is a free hyperparameter.

Work offset (``ModelConfig.work_offset``, log label transform only): the regressor predicts the
transformed latency *minus* ln(work) / label std, where work = floating-point operations + bytes
accessed of the program, summed over its leaves from the raw features (``log_work``). The network then
learns how fast a program runs (work per second) rather than how long, and a program larger than any
seen in training gets a proportionally larger latency instead of one clipped to the training range: a
fixed roofline-style prior that helps on tasks of unseen networks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..device import DEVICE_DESCRIPTOR_DIM
from ..features import FEATURE_DIM, sinusoidal_encoding
from ..features.schema import FEATURE_NAMES, MAX_BUFFERS_PER_STORE

# Raw leaf-feature columns whose 2^x - 1 (they are slog values) are operation counts and bytes accessed.
_FLOAT_OP_COLUMNS = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith("float_")]
_BYTES_COLUMNS = [FEATURE_NAMES.index(f"buf{b}_bytes") for b in range(MAX_BUFFERS_PER_STORE)]


def log_work(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """features (B, L, FEATURE_DIM) raw slog features, mask (B, L) -> ln(1 + float ops + bytes accessed)
    of each program, (B,)."""
    cols = _FLOAT_OP_COLUMNS + _BYTES_COLUMNS
    amounts = torch.exp2(features[..., cols].double().clamp(min=0)) - 1.0
    return torch.log1p((amounts.sum(-1) * mask.to(amounts.dtype)).sum(-1)).to(features.dtype)


@dataclass
class ModelConfig:
    feature_dim: int = FEATURE_DIM
    device_dim: int = DEVICE_DESCRIPTOR_DIM
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 3
    d_ff: int = 256
    dropout: float = 0.1
    embed_dim: int = 128
    regressor_hidden: list[int] = field(default_factory=lambda: [256, 128])
    work_offset: bool = False  # predict work per second (see the module docstring); log label transform only

    def __post_init__(self):
        for key in ("feature_dim", "device_dim", "d_model", "n_heads", "n_layers", "d_ff", "embed_dim"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be a number in [0, 1), got {self.dropout!r}")
        hidden = self.regressor_hidden
        if not isinstance(hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                                   for h in hidden):
            raise ValueError(f"regressor_hidden must be a list of integers >= 1, got {hidden!r}")
        if not isinstance(self.work_offset, bool):
            raise ValueError(f"work_offset must be true or false, got {self.work_offset!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


def _mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class CDMPPNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        # Feature standardization, fitted on training data (set_feature_scaler) and saved with the weights.
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_std", torch.ones(cfg.feature_dim))
        self.input_proj = nn.Linear(cfg.feature_dim, cfg.d_model)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.embed = nn.Sequential(nn.Linear(2 * cfg.d_model, cfg.embed_dim), nn.GELU())
        self.device_embed = nn.Sequential(nn.Linear(cfg.device_dim, cfg.embed_dim), nn.GELU(),
                                          nn.Linear(cfg.embed_dim, cfg.embed_dim))
        hidden = [cfg.embed_dim] + list(cfg.regressor_hidden)
        self.regressor = nn.Sequential(_mlp(hidden, cfg.dropout), nn.Linear(hidden[-1], 1))
        if cfg.work_offset:
            # pred += (log_work - work_mean) * work_scale; set by set_work_offset from the training data
            # and the label transform, saved with the weights.
            self.register_buffer("work_mean", torch.zeros(()))
            self.register_buffer("work_scale", torch.zeros(()))

    def set_feature_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        # Constant columns (std 0) would divide by zero; they carry no information anyway.
        self.feature_std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))

    def set_work_offset(self, work_mean: float, label_std: float) -> None:
        """Centre of ln(work) over the training programs, and the std of ln(latency) that the log label
        transform divides by (so that one unit of ln(work) is one unit of ln(latency))."""
        if not self.cfg.work_offset:
            raise ValueError("set_work_offset: this model was built with work_offset = False")
        self.work_mean.fill_(float(work_mean))
        self.work_scale.fill_(1.0 / float(label_std))

    def embeddings(self, features: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor,
                   device: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """features (B, L, F), positions (B, L) int, mask (B, L) bool (True = real leaf), device
        (B, device_dim) or None -> (device-free program embedding, program embedding + device embedding),
        each (B, embed_dim); the same tensor twice when ``device`` is None."""
        x = (features - self.feature_mean) / self.feature_std
        x = self.input_proj(x) + sinusoidal_encoding(positions, self.cfg.d_model)
        x = self.norm(self.encoder(x, src_key_padding_mask=~mask))
        m = mask.unsqueeze(-1).to(x.dtype)
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)
        mx = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(1).values
        zp = self.embed(torch.cat([mean, mx], dim=-1))
        z = zp if device is None else zp + self.device_embed(device)
        return zp, z

    def forward(self, features, positions, mask, device=None, return_program_embedding: bool = False):
        """-> (prediction of the transformed latency (B,), program embedding (B, embed_dim)), and with
        ``return_program_embedding`` also the device-free program embedding (B, embed_dim)."""
        zp, z = self.embeddings(features, positions, mask, device)
        pred = self.regressor(z).squeeze(-1)
        if self.cfg.work_offset:
            pred = pred + (log_work(features, mask) - self.work_mean) * self.work_scale
        return (pred, z, zp) if return_program_embedding else (pred, z)
