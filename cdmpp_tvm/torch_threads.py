"""``torch_threads``: run torch CPU ops on a given number of threads inside a block.

A top-level module (like ``atomic_io``) because both the model's inference and the baselines use it, and
the baselines must not import the model package (``model.tree_head`` builds on ``baselines.xgb``).
"""
from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch CPU ops on ``n`` threads inside the block, restoring the caller's setting after.

    Inside a tuner, TVM's own worker threads compete for the same cores; measured on the 2-core box
    with the search running, 1 torch thread gave 4x the throughput of 2 (OpenMP threads spin-wait)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
