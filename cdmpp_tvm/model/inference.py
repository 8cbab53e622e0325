"""Batched inference: the one place where programs go through the network.

On a CUDA out-of-memory error the batch is split in half and retried (down to one program), so a large
search round never aborts because the GPU is shared or small. ``autocast``: run the network under
``torch.autocast`` in that dtype (bf16 on a GPU: faster, slightly different predictions; measured by
``benchmarks/predict_throughput.py --device cuda``); None runs it in fp32.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from ..features import CompactAST, collate
from .network import CDMPPNet

logger = logging.getLogger(__name__)


def default_torch_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def to_tensors(asts: list[CompactAST], device_vec: np.ndarray | None, torch_device: torch.device):
    """Collate programs to tensors. ``device_vec``: None, one descriptor (D,) for all, or one per program (N, D)."""
    batch = collate(asts)
    feats = torch.from_numpy(batch.features).to(torch_device, non_blocking=True)
    pos = torch.from_numpy(batch.positions).to(torch_device, non_blocking=True)
    mask = torch.from_numpy(batch.mask).to(torch_device, non_blocking=True)
    dev = None
    if device_vec is not None:
        dev = torch.from_numpy(np.broadcast_to(device_vec, (len(asts), device_vec.shape[-1])).copy()).to(torch_device)
    return feats, pos, mask, dev


class OOMSplitCounter:
    """Counts how often a batch had to be split because the GPU ran out of memory."""

    def __init__(self):
        self.splits = 0


@torch.no_grad()
def predict_transformed(model: CDMPPNet, asts: list[CompactAST], device_vec: np.ndarray | None,
                        batch_size: int, torch_device: torch.device, want_embedding: bool = False,
                        oom: OOMSplitCounter | None = None, autocast: torch.dtype | None = None):
    """-> predictions in the label-transform space, (N,) float64 [and embeddings (N, embed_dim)].
    ``device_vec``: None, one descriptor (D,) for all programs, or one per program (N, D)."""
    model.eval()
    preds, embs = [], []
    # A stack of chunks, next chunk on top, so a split chunk's halves are processed in order.
    per_program = device_vec is not None and device_vec.ndim == 2
    stack = [np.arange(i, min(i + batch_size, len(asts))) for i in range(0, len(asts), batch_size)][::-1]
    while stack:
        chunk = stack.pop()
        try:
            dv = device_vec[chunk] if per_program else device_vec
            with torch.autocast(torch_device.type, dtype=autocast, enabled=autocast is not None):
                out, z = model(*to_tensors([asts[i] for i in chunk], dv, torch_device))
        except torch.cuda.OutOfMemoryError:
            if len(chunk) == 1:
                raise
            torch.cuda.empty_cache()
            if oom is not None:
                oom.splits += 1
            logger.warning("CUDA out of memory on a batch of %d programs; splitting it in two", len(chunk))
            half = len(chunk) // 2
            stack += [chunk[half:], chunk[:half]]
            continue
        preds.append(out.double().cpu().numpy())
        if want_embedding:
            embs.append(z.float().cpu().numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0)
    return (pred, np.concatenate(embs)) if want_embedding else pred
