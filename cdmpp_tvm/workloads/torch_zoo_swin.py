"""Zoo part 6: Swin Transformer (shifted-window attention) in plain torch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _windows(x, ws: int):
    """(B, H, W, C) -> (B * H/ws * W/ws, ws*ws, C)."""
    b, h, w, c = x.shape
    x = x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c)


def _unwindows(x, ws: int, b: int, h: int, w: int):
    c = x.shape[-1]
    x = x.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, c)


def _shift_mask(res: int, ws: int, shift: int) -> torch.Tensor:
    """Swin's attention mask for the cyclically shifted windows: (num_windows, ws*ws, ws*ws), 0 / -100."""
    region = torch.zeros(1, res, res, 1)
    cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    for i, (hs, wsl) in enumerate((a, b) for a in cuts for b in cuts):
        region[:, hs, wsl, :] = i
    ids = _windows(region, ws).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return torch.where(diff != 0, -100.0, 0.0)


class SwinBlock(nn.Module):
    """(Shifted-)window multi-head attention + MLP, pre-LN. The relative-position bias, a gather from a
    (2ws-1)^2 table by a constant index at inference, is stored directly as its (heads, N, N) result."""

    def __init__(self, dim: int, heads: int, res: int, ws: int = 7, shift: int = 0):
        super().__init__()
        self.heads, self.res, self.ws = heads, res, min(ws, res)
        self.shift = 0 if res <= ws else shift
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        n = self.ws * self.ws
        self.rel_bias = nn.Parameter(torch.randn(heads, n, n) * 0.02)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        mask = _shift_mask(res, self.ws, self.shift) if self.shift else None
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):  # (B, L, C)
        b, l, c = x.shape
        h = self.norm1(x).reshape(b, self.res, self.res, c)
        if self.shift:
            h = torch.roll(h, (-self.shift, -self.shift), (1, 2))
        win = _windows(h, self.ws)  # (B*nW, N, C)
        bw, n, _ = win.shape
        qkv = self.qkv(win).reshape(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.matmul(q * (c // self.heads) ** -0.5, k.transpose(-1, -2)) + self.rel_bias
        if self.mask is not None:
            nw = self.mask.shape[0]
            attn = (attn.reshape(bw // nw, nw, self.heads, n, n) + self.mask[None, :, None]).reshape(bw, self.heads, n, n)
        out = self.proj(torch.matmul(F.softmax(attn, -1), v).transpose(1, 2).reshape(bw, n, c))
        out = _unwindows(out, self.ws, b, self.res, self.res)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
        x = x + out.reshape(b, l, c)
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat (4C) + LayerNorm + Linear to 2C: halves the resolution."""

    def __init__(self, dim: int, res: int):
        super().__init__()
        self.res, self.norm, self.reduce = res, nn.LayerNorm(4 * dim), nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        b, _, c = x.shape
        x = x.reshape(b, self.res, self.res, c)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduce(self.norm(x.reshape(b, -1, 4 * c)))


class SwinTiny(nn.Module):
    def __init__(self, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24), dim: int = 96, num_classes: int = 1000):
        super().__init__()
        self.patch, self.patch_norm = nn.Conv2d(3, dim, 4, 4), nn.LayerNorm(dim)
        layers, res = [], 56
        for i, (depth, h) in enumerate(zip(depths, heads)):
            layers += [SwinBlock(dim, h, res, shift=0 if j % 2 == 0 else 3) for j in range(depth)]
            if i < len(depths) - 1:
                layers.append(PatchMerging(dim, res))
                dim, res = 2 * dim, res // 2
        self.layers = nn.Sequential(*layers)
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_classes)

    def forward(self, img):
        x = self.patch_norm(self.patch(img).flatten(2).transpose(1, 2))
        return self.head(self.norm(self.layers(x)).mean(1))


def swin_tiny(batch_size: int):
    """Swin-T: 4x4 patch embedding (56x56x96), depths 2/2/6/2, heads 3/6/12/24, 7x7 windows with
    cyclic shift 3 (torch.roll + constant mask) on odd blocks, patch merging, 224x224 image."""
    return SwinTiny(), (torch.randn(batch_size, 3, 224, 224),)


BUILDERS = {"swin_tiny": swin_tiny}
