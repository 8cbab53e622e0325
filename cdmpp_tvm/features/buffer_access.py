"""How a store touches its buffers: the affine index analysis of each access against the store's loop
stack, and the 18 buffer-access features per distinct buffer (``buffer_rows``), as in ``PerStoreFeature``."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .schema import CACHE_LINE_BYTES, slog


@dataclass
class BufferInfo:
    handle: int
    is_float: bool
    elem_bytes: int
    shape: list[float]
    row_major: list[float]  # element stride of each dimension
    size: float  # number of elements
    scope: str


class Access:
    """One access of a buffer by a store, analysed against the store's loop stack."""

    __slots__ = ("buf", "is_write", "loop_stride", "unique_by_depth")

    def __init__(self, buf: BufferInfo, aff: list, is_write: bool, extents: list[float]):
        n = len(extents)
        # Flattened element stride of each loop, and how far each dimension's index spans within the
        # innermost j loops (touched extent = 1 + span, capped by the dimension's size).
        self.loop_stride = [0.0] * n
        spans = []
        for d, a in enumerate(aff[: len(buf.shape)]):
            span = [0.0] * n
            for li, c in a.items():
                c = abs(c)
                self.loop_stride[li] += c * buf.row_major[d]
                span[n - 1 - li] = c * (extents[li] - 1.0)
            spans.append(span)
        unique = [1.0] * n
        for d, span in enumerate(spans):
            size, acc = buf.shape[d], 1.0
            for j in range(n):
                acc += span[j]
                unique[j] *= acc if acc < size else size
        self.buf, self.is_write, self.unique_by_depth = buf, is_write, unique


def buffer_rows(accesses: list[Access], extents: list[float]) -> list[list[float]]:
    """The 18 buffer-access features of every distinct buffer a store touches."""
    n = len(extents)
    by_buffer: dict[int, list[Access]] = {}
    for a in accesses:
        by_buffer.setdefault(a.buf.handle, []).append(a)
    total_iters = math.prod(extents)
    rows = []
    for accs in by_buffer.values():
        buf = accs[0].buf
        elem_bytes = buf.elem_bytes
        writes = any(a.is_write for a in accs)
        reads = any(not a.is_write for a in accs)
        row = [0.0] * 18
        row[0 if not writes else (1 if not reads else 2)] = 1.0
        strides = [max(a.loop_stride[i] for a in accs) for i in range(n)]
        uniq_by_depth = [max(a.unique_by_depth[j] for a in accs) for j in range(n)] or [1.0]
        # The buffer's stride is that of the innermost loop any of its accesses moves with;
        # consecutive iterations of that loop share a cache line when the stride is small.
        moving = [i for i in range(n) if strides[i] != 0.0]
        stride = strides[moving[-1]] if moving else 0.0
        inner_len = extents[moving[-1]] if moving else 1.0
        per_line = max(1.0, CACHE_LINE_BYTES / (elem_bytes * stride)) if stride else inner_len
        accesses_ct = total_iters * len(accs)
        bytes_ = accesses_ct * elem_bytes
        unique_bytes = uniq_by_depth[-1] * elem_bytes
        lines = accesses_ct / min(per_line, inner_len)
        unique_lines = max(1.0, unique_bytes / CACHE_LINE_BYTES)
        # Reuse: the innermost non-trivial loop this buffer's index does not move with.
        still = [i for i in range(n) if strides[i] == 0.0 and extents[i] > 1]
        if still:
            r = still[-1]
            row[7] = 1.0
            reuse_ct = extents[r]
            reuse_dis_iter = math.prod(extents[r + 1:])
            reuse_dis_bytes = uniq_by_depth[n - r - 2] * elem_bytes if r + 1 < n else float(elem_bytes)
        elif len(accs) > 1:
            row[8] = 1.0
            reuse_ct, reuse_dis_iter, reuse_dis_bytes = float(len(accs)), 1.0, float(elem_bytes)
        else:
            row[9] = 1.0
            reuse_ct, reuse_dis_iter, reuse_dis_bytes = 0.0, 0.0, 0.0
        div = reuse_ct if reuse_ct > 0 else 1.0
        row[3:7] = [slog(bytes_), slog(unique_bytes), slog(lines), slog(unique_lines)]
        row[10:13] = [slog(reuse_dis_iter), slog(reuse_dis_bytes), slog(reuse_ct)]
        row[13:17] = [slog(bytes_ / div), slog(unique_bytes / div), slog(lines / div), slog(unique_lines / div)]
        row[17] = slog(stride)
        rows.append(row)
    return rows
