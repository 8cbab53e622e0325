"""Draw random schedule candidates for a workload without running a tuning loop.

For apache-tvm 0.27.0.post1.

Why: 0.27 has no public one-call API for "give me N random scheduled programs": the way is to
drive a TuneContext through ReplayTrace's pre_tuning / generate_measure_candidates / post_tuning by
hand (this is also how evolutionary search draws its initial population). Benchmarks, tests and
offline data collection all need it, so the verified sequence lives here once.
"""

from __future__ import annotations

import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.target import Target

from .host_target import physical_cores


def sample_candidates(
    mod: tvm.IRModule | tvm.tirx.PrimFunc,
    target: Target,
    count: int,
    seed: int = 0,
    num_threads: int | None = None,
    space_generator: ms.space_generator.SpaceGenerator | str = "post-order-apply",
) -> list[ms.MeasureCandidate]:
    """Up to ``count`` random candidates from the target's default design space, postprocessed
    and ready to build (``cand.sch.mod``); ReplayTrace may return fewer if sampling fails.

    Like any TuneContext, this imports every backend's tensor intrinsics (~60 s) unless
    ``register_tensor_intrinsics`` was called first; that is left to the caller, because for a
    CUDA target it means that same full import. The default rules for the nvidia/nvidia-h100 tag
    are the tensor-core ones and fail without the CUDA intrinsics ("TensorIntrin
    'wmma_fill_16x16x16_f32' is not registered"); the plain CUDA rules,
    ``space_generator=ms.space_generator.PostOrderApply(sch_rules="cuda", postprocs="cuda",
    mutator_probs="cuda")``, need none, so with the llvm stand-in in place they skip the import.
    """
    context = ms.TuneContext(
        mod=mod,
        target=target,
        space_generator=space_generator,
        search_strategy=ms.search_strategy.ReplayTrace(),
        task_name="main",
        num_threads=num_threads or physical_cores(),
        rand_state=seed,
    )
    context.pre_tuning(
        max_trials=count,
        num_trials_per_iter=count,
        design_spaces=context.generate_design_space(),
        database=ms.database.MemoryDatabase(),
        cost_model=ms.cost_model.RandomModel(),
    )
    candidates = list(context.generate_measure_candidates() or [])
    context.post_tuning()
    return candidates
