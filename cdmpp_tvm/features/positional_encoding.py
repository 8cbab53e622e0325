"""The standard sinusoidal positional encoding (Vaswani et al.) of a leaf's pre-order position.

The original CDMPP used the exponent 2i/d with i already stepping by 2, which leaves the upper half of
the encoding constant; this is the standard form: PE[p, 2k] = sin(p / 10000^(2k/d)),
PE[p, 2k+1] = cos(p / 10000^(2k/d)).
"""
from __future__ import annotations

import math

import torch


def sinusoidal_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """positions: integer tensor of any shape S -> float tensor of shape S + (dim,)."""
    if dim % 2:
        raise ValueError(f"positional encoding dimension must be even, got {dim}")
    k = torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
    inv_freq = torch.exp(-math.log(10000.0) * k / dim)
    angles = positions.to(torch.float32).unsqueeze(-1) * inv_freq
    pe = torch.empty(*positions.shape, dim, device=positions.device, dtype=torch.float32)
    pe[..., 0::2] = torch.sin(angles)
    pe[..., 1::2] = torch.cos(angles)
    return pe
