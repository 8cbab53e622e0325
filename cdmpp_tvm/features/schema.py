"""The compact AST's leaf features: their names, order and schema version (``FEATURE_NAMES``).

Per leaf (one buffer store): the 164 per-store quantities of MetaSchedule's ``PerStoreFeature`` in the
same groups and order (op counts x loop product, vectorize/unroll/parallel num/product/length/position,
GPU thread extents, 5 buffers x 18 access features, arithmetic-intensity curve, allocation, outer
loops), plus 7 CDMPP facts a per-buffer extractor cannot see.
"""
from __future__ import annotations

import math

# Bump whenever the meaning or order of any feature changes: checkpoints record it and refuse a mismatch.
# v2: auto_unroll_max_step is read (v1 read MetaSchedule 0.27's int annotation as 0 on every program).
FEATURE_SCHEMA_VERSION = "compact-ast-v2"

MAX_BUFFERS_PER_STORE = 5
ARITH_INTENSITY_SAMPLES = 10
CACHE_LINE_BYTES = 64

_OP_NAMES = (
    "float_mad", "float_addsub", "float_mul", "float_divmod", "float_cmp", "float_math_func",
    "float_other_func", "int_mad", "int_addsub", "int_mul", "int_divmod", "int_cmp", "int_math_func",
    "int_other_func", "bool_op", "select_op",
)

# Where the innermost loop of a kind sits, as in Ansor's BufferAccessFeature/ForKindFeature.
_POSITIONS = ("none", "inner_spatial", "middle_spatial", "outer_spatial", "inner_reduce", "middle_reduce",
              "outer_reduce", "mixed")

_LOOP_KINDS = ("vectorize", "unroll", "parallel")

_THREAD_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z", "threadIdx.x", "threadIdx.y", "threadIdx.z", "vthread")

_BUFFER_FIELDS = (
    "acc_read", "acc_write", "acc_readwrite", "bytes", "unique_bytes", "lines", "unique_lines",
    "reuse_loop_multiple_read", "reuse_serial_multiple_readwrite", "reuse_none", "reuse_dis_iter",
    "reuse_dis_bytes", "reuse_ct", "bytes_d_reuse_ct", "unique_bytes_d_reuse_ct", "lines_d_reuse_ct",
    "unique_lines_d_reuse_ct", "stride",
)


def _feature_names() -> tuple[str, ...]:
    names = list(_OP_NAMES)
    for kind in _LOOP_KINDS:
        names += [f"{kind}_num", f"{kind}_prod", f"{kind}_len"] + [f"{kind}_pos_{p}" for p in _POSITIONS]
    names += ["is_gpu"] + [f"thread_{t}_len" for t in _THREAD_TAGS]
    for b in range(MAX_BUFFERS_PER_STORE):
        names += [f"buf{b}_{f}" for f in _BUFFER_FIELDS]
    names += [f"arith_intensity_{i}" for i in range(ARITH_INTENSITY_SAMPLES)]
    names += ["alloc_size", "alloc_prod", "alloc_outer_prod", "outer_prod_d_alloc_outer_prod"]
    names += ["outer_prod", "num_loops", "auto_unroll_max_step"]
    # CDMPP-specific per-leaf facts that a per-buffer extractor cannot see.
    names += ["is_constant_store", "scope_global", "scope_shared", "scope_local", "tree_depth",
              "num_buffer_reads", "is_reduction_update"]
    return tuple(names)


FEATURE_NAMES = _feature_names()
FEATURE_DIM = len(FEATURE_NAMES)
COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
BUF0 = COL["buf0_acc_read"]
AI0 = COL["arith_intensity_0"]


def slog(x: float) -> float:
    return math.copysign(math.log2(abs(x) + 1.0), x)
