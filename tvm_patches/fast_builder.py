"""A MetaSchedule LocalBuilder whose workers do not import every backend's tensor intrinsics.

For apache-tvm 0.27.0.post1.

Why: ``LocalBuilder`` starts fresh worker processes for every batch, and its default build
function (``s_tir.meta_schedule.builder.default_build``) begins with ``import
tvm.s_tir.tensor_intrin``, which parses the intrinsics of every backend (about 55 s for the CUDA
ones alone on a 2-core box), in every worker, for every batch. The import runs inside the first
build task of each worker, so it counts against LocalBuilder's 30 s per-candidate timeout: on a
busy 2-core machine (import 55-75 s) every candidate of the batch failed as "Timeout".
Building a candidate does not need the intrinsics: a tensorized candidate already carries the
intrinsic's implementation in its TIR (verified: wmma fp16 candidates for nvidia/nvidia-h100 build
in workers that never import them), so ``fast_build`` is ``default_build`` without that import.

Checked in 0.27.0.post1 ``builder/local_builder.py``: the default export (``default_export``: tar
the module into a temp dir) and the default initializer (None) import nothing slow, so only the
build function is replaced. What each worker still pays per batch is ``import tvm`` (2-8 s here,
depending on load; about 2 s of it is torch, which tvm_ffi imports unconditionally).
"""

from __future__ import annotations

import sys

import cloudpickle
from tvm.s_tir import meta_schedule as ms

from .host_target import physical_cores

# Generous: one conv2d candidate builds in 0.03-0.5 s, but the first build in a worker also pays
# `import tvm`, and on a loaded 2-core machine that can take several seconds.
DEFAULT_BUILD_TIMEOUT_SEC = 60.0


def fast_build(mod, target, params):  # signature fixed by LocalBuilder's T_BUILD
    """``default_build`` without ``import tvm.s_tir.tensor_intrin``; runs inside builder workers."""
    # Imports are local so the function pickles by value without dragging module globals along.
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    del params  # MetaSchedule always passes None; default_build ignores it too
    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


# Workers are `python -m tvm.exec.popen_worker` processes whose sys.path holds only the cwd and
# installed packages. Pickling fast_build by value means they need not be able to import
# tvm_patches (e.g. when it is on sys.path only through a test runner's path insertion).
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def make_builder(
    max_workers: int | None = None, timeout_sec: float | None = None
) -> ms.builder.LocalBuilder:
    """LocalBuilder using ``fast_build``; max_workers defaults to the physical core count."""
    return ms.builder.LocalBuilder(
        max_workers=max_workers or physical_cores(),
        timeout_sec=DEFAULT_BUILD_TIMEOUT_SEC if timeout_sec is None else timeout_sec,
        f_build=fast_build,
    )
