"""Compact AST of a scheduled TIR program (the CDMPP program representation).

The tree keeps only what decides the speed of a tensor program: loops (with their kind and extent) as
inner nodes and buffer stores as leaves. Every other statement (blocks, sequences, conditions, lets,
allocations) is transparent: its children hang off the nearest enclosing loop. Each leaf gets

* ``leaf_features``: a vector of per-store quantities aligned with MetaSchedule's ``PerStoreFeature``
  groups (compute op counts, vectorize/unroll/parallel/thread statistics, buffer access patterns,
  arithmetic intensity curve, allocation, outer loops; see ``FEATURE_NAMES``), computed for *this store*
  rather than per written buffer, so a reduction's init store and its update store are two leaves;
* ``preorder_position``: the leaf's index in a pre-order walk of the tree (root = 0). The model encodes
  it with the standard sinusoidal positional encoding (``positional_encoding.py``).

Unlike ``PerStoreFeature`` this walks the *scheduled* module as it is (``cand.sch.mod["main"]``), without
running the lowering passes (they cost ~5.6 ms per candidate); block iteration variables are mapped back
to loop variables through each ``SBlockRealize``'s bindings instead.

All magnitudes are ``slog(x) = sign(x) * log2(|x| + 1)``, as in TVM's extractors, so that counts spanning
ten orders of magnitude fit one scale.

Approximations (documented because they shape what the model can learn):
* Index expressions are treated as affine in the loop variables; ``floordiv(e, c)`` divides the
  coefficients by ``c`` and ``floormod(e, c)`` bounds the touched extent of that dimension by ``c``.
* Whether an arithmetic node is a float or an int operation is decided by where it stands (inside a
  condition or not) and by the stored buffer's dtype, not by asking every node for its dtype, which
  costs ~7 us per node through the FFI.

This Python walker is the reference: ``compact_ast_native.cc`` is a C++ port of it (loaded by ``native.py``,
whose ``extract_compact_ast`` is the one to call); a change here must be made there too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import tirx
from tvm.s_tir import stmt as s_stmt

from .buffer_access import Access, BufferInfo, buffer_rows
from .schema import (
    AI0,
    ARITH_INTENSITY_SAMPLES,
    BUF0,
    COL,
    FEATURE_DIM,
    MAX_BUFFERS_PER_STORE,
    slog,
)


# Node kinds of the tree (``CompactAST.node_kind``): root, one per ForKind, and leaf.
NODE_ROOT, NODE_SERIAL, NODE_PARALLEL, NODE_VECTORIZED, NODE_UNROLLED, NODE_THREAD, NODE_STORE = range(7)
_FOR_KIND_TO_NODE = {0: NODE_SERIAL, 1: NODE_PARALLEL, 2: NODE_VECTORIZED, 3: NODE_UNROLLED, 4: NODE_THREAD}


@dataclass(frozen=True)
class CompactAST:
    """One program. ``leaf_features``: (n_leaves, FEATURE_DIM) float32; ``preorder_position``:
    (n_leaves,) int32; ``parent``, ``node_kind``, ``node_extent``: (n_nodes,) int32 describing the tree
    (root first, parent of root = -1, extent of root and leaves = 1)."""

    leaf_features: np.ndarray
    preorder_position: np.ndarray
    parent: np.ndarray
    node_kind: np.ndarray
    node_extent: np.ndarray

    @property
    def n_leaves(self) -> int:
        return int(self.leaf_features.shape[0])

    @property
    def n_nodes(self) -> int:
        return int(self.parent.shape[0])


def _const_int(expr, default: int = 1) -> int:
    """Value of an IntImm; symbolic extents (dynamic shapes) count as ``default``."""
    return int(expr.value) if isinstance(expr, tirx.IntImm) else default


def _annotation_int(value) -> int:
    """An integer loop annotation: MetaSchedule 0.27 stores ``pragma_auto_unroll_max_step`` as a plain
    int (an IntImm in older TVMs); anything else counts as 0."""
    return int(value) if isinstance(value, int) else _const_int(value, 0)


# --------------------------------------------------------------------------------------------------
# Affine index analysis. An affine form is a dict {loop index: coefficient}; constants are dropped
# because only how an index moves with each loop matters for access patterns.

_Affine = dict


def _affine_add(a: _Affine, b: _Affine, sign: float = 1.0) -> _Affine:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + sign * v
    return out


def _affine_scale(a: _Affine, c: float) -> _Affine:
    return {k: v * c for k, v in a.items()}


class _Walker:
    """One pass over a PrimFunc body building the tree and the raw facts of every store."""

    def __init__(self, is_gpu: bool):
        self.is_gpu = is_gpu
        self.parent: list[int] = [-1]
        self.node_kind: list[int] = [NODE_ROOT]
        self.node_extent: list[int] = [1]
        # The loop stack: (var handle, extent, for kind, thread tag or "", auto-unroll pragma, node id).
        self.loops: list[tuple] = []
        self.loop_index_of_var: dict[int, int] = {}
        # Block iteration variables bound to affine forms over the loop stack.
        self.block_var_affine: dict[int, _Affine] = {}
        # Allocations: buffer handle -> number of enclosing loops at the allocating block.
        self.alloc_depth: dict[int, int] = {}
        self.leaves: list[list[float]] = []
        self.leaf_node_ids: list[int] = []
        self._buffer_cache: dict[int, BufferInfo] = {}

    # -- tree -----------------------------------------------------------------------------------
    def _new_node(self, kind: int, extent: int) -> int:
        self.parent.append(self.loops[-1][5] if self.loops else 0)
        self.node_kind.append(kind)
        self.node_extent.append(extent)
        return len(self.parent) - 1

    def visit(self, stmt) -> None:
        t = type(stmt)
        if t is tirx.For:
            self._visit_for(stmt)
        elif t is tirx.SeqStmt:
            for s in stmt.seq:
                self.visit(s)
        elif t is s_stmt.SBlockRealize:
            self._visit_block_realize(stmt)
        elif t is tirx.BufferStore:
            self._visit_store(stmt)
        elif t is tirx.IfThenElse:
            self.visit(stmt.then_case)
            if stmt.else_case is not None:
                self.visit(stmt.else_case)
        elif t is tirx.AllocBuffer:
            self.alloc_depth[stmt.buffer.__chandle__()] = len(self.loops)
        elif hasattr(stmt, "body"):  # LetStmt, AttrStmt, AssertStmt, While, ...: transparent
            self.visit(stmt.body)
        # Evaluate, DeclBuffer, Bind, ...: no loops, no stores.

    def _visit_for(self, loop) -> None:
        extent = _const_int(loop.extent)
        kind = int(loop.kind)
        tag = loop.thread_binding.thread_tag if kind == 4 and loop.thread_binding is not None else ""
        unroll = 0
        ann = loop.annotations
        if len(ann) and "pragma_auto_unroll_max_step" in ann:
            unroll = _annotation_int(ann["pragma_auto_unroll_max_step"])
        node = self._new_node(_FOR_KIND_TO_NODE.get(kind, NODE_SERIAL), extent)
        handle = loop.loop_var.__chandle__()
        self.loop_index_of_var[handle] = len(self.loops)
        self.loops.append((handle, extent, kind, tag, unroll, node))
        self.visit(loop.body)
        self.loops.pop()
        del self.loop_index_of_var[handle]

    def _visit_block_realize(self, realize) -> None:
        block = realize.block
        for iv, value in zip(block.iter_vars, realize.iter_values):
            self.block_var_affine[iv.var.__chandle__()] = self.affine(value)
        for buf in block.alloc_buffers:
            self.alloc_depth[buf.__chandle__()] = len(self.loops)
        if block.init is not None:
            self.visit(block.init)
        self.visit(block.body)

    # -- expressions ----------------------------------------------------------------------------
    def affine(self, expr) -> _Affine:
        t = type(expr)
        if t is tirx.Var:
            h = expr.__chandle__()
            li = self.loop_index_of_var.get(h)
            if li is not None:
                return {li: 1.0}
            return self.block_var_affine.get(h, {})
        if t is tirx.IntImm:
            return {}
        if t is tirx.Add:
            return _affine_add(self.affine(expr.a), self.affine(expr.b))
        if t is tirx.Sub:
            return _affine_add(self.affine(expr.a), self.affine(expr.b), -1.0)
        if t is tirx.Mul:
            a, b = expr.a, expr.b
            if type(b) is tirx.IntImm:
                return _affine_scale(self.affine(a), float(b.value))
            if type(a) is tirx.IntImm:
                return _affine_scale(self.affine(b), float(a.value))
            return _affine_add(self.affine(a), self.affine(b))  # non-affine: keep the dependence
        if t in (tirx.FloorDiv, tirx.Div):
            c = _const_int(expr.b, 1) or 1
            return _affine_scale(self.affine(expr.a), 1.0 / abs(c))
        if t in (tirx.FloorMod, tirx.Mod):
            return self.affine(expr.a)
        if t is tirx.Cast:
            return self.affine(expr.value)
        # Min/Max/Select/calls in an index: keep the dependence on every loop the operands touch.
        out: _Affine = {}
        for name in ("a", "b", "value", "true_value", "false_value"):
            sub = getattr(expr, name, None)
            if sub is not None:
                out = _affine_add(out, self.affine(sub))
        return out

    def _buffer_info(self, buf) -> "BufferInfo":
        h = buf.__chandle__()
        info = self._buffer_cache.get(h)
        if info is None:
            dt = buf.dtype
            shape = [float(_const_int(x)) for x in buf.shape] or [1.0]
            row_major = [math.prod(shape[d + 1:]) for d in range(len(shape))]
            info = BufferInfo(h, dt.is_float, max(1, dt.bits * dt.lanes // 8), shape, row_major,
                               math.prod(shape), buf.scope())
            self._buffer_cache[h] = info
        return info

    def _count_ops(self, expr, is_float: bool, ops: list[float], reads: list, in_cond: bool) -> None:
        """Add op counts of ``expr`` to ``ops`` and collect its buffer loads into ``reads``."""
        t = type(expr)
        if t is tvm.ir.TensorLoad:
            reads.append(expr)
            return
        if t in _OPERANDS_WITHOUT_OPS:
            return
        fl = is_float and not in_cond
        base = 0 if fl else 7
        if t is tirx.Add or t is tirx.Sub:
            ops[base + 1] += 1
        elif t is tirx.Mul:
            ops[base + 2] += 1
        elif t in (tirx.Div, tirx.Mod, tirx.FloorDiv, tirx.FloorMod):
            ops[base + 3] += 1
        elif t in (tirx.Min, tirx.Max, tirx.EQ, tirx.NE, tirx.LT, tirx.LE, tirx.GT, tirx.GE):
            ops[base + 4] += 1
        elif t in (tirx.And, tirx.Or, tirx.Not):
            ops[14] += 1
        elif t is tirx.Select:
            ops[15] += 1
            self._count_ops(expr.condition, is_float, ops, reads, True)
            self._count_ops(expr.true_value, is_float, ops, reads, in_cond)
            self._count_ops(expr.false_value, is_float, ops, reads, in_cond)
            return
        elif t is tvm.ir.Call:
            name = expr.op.name if hasattr(expr.op, "name") else ""
            if name.endswith("if_then_else"):
                ops[15] += 1
                args = expr.args
                self._count_ops(args[0], is_float, ops, reads, True)
                self._count_ops(args[1], is_float, ops, reads, in_cond)
                self._count_ops(args[2], is_float, ops, reads, in_cond)
                return
            ops[base + (5 if name.split(".")[-1] in _MATH_FUNCS else 6)] += 1
            for a in expr.args:
                self._count_ops(a, is_float, ops, reads, in_cond)
            return
        for name in ("a", "b", "value"):
            sub = getattr(expr, name, None)
            if sub is not None:
                self._count_ops(sub, is_float, ops, reads, in_cond)

    # -- leaves ---------------------------------------------------------------------------------
    def _visit_store(self, store) -> None:
        node = self._new_node(NODE_STORE, 1)
        depth = 0
        p = node
        while p > 0:
            p = self.parent[p]
            depth += 1
        self.leaf_node_ids.append(node)
        self.leaves.append(self._leaf_features(store, depth))

    def _leaf_features(self, store, depth: int) -> list[float]:
        # Plain Python floats throughout: with ~10-20 loops and ~4 buffer dimensions, numpy's per-call
        # overhead made this 3x slower.
        f = [0.0] * FEATURE_DIM
        loops = self.loops
        n = len(loops)
        extents = [float(lp[1]) for lp in loops]
        outer_prod = math.prod(extents)

        # Compute.
        winfo = self._buffer_info(store.buffer)
        ops = [0.0] * 16
        read_loads: list = []
        value = store.value
        is_constant = type(value) in (tirx.IntImm, tirx.FloatImm)
        if not is_constant:
            self._count_ops(value, winfo.is_float, ops, read_loads, False)
        f[0:16] = [slog(o * outer_prod) for o in ops]

        # Accesses: the write, then every read (each TensorLoad in the value).
        write_aff = [self.affine(i) for i in store.indices]
        accesses = [Access(winfo, write_aff, True, extents)]
        for ld in read_loads:
            accesses.append(Access(self._buffer_info(ld.source), [self.affine(i) for i in ld.indices], False, extents))
        spatial_loops = {k for aff in write_aff for k, v in aff.items() if v != 0.0}

        _loop_kind_features(f, loops, extents, spatial_loops)
        f[COL["is_gpu"]] = 1.0 if self.is_gpu else 0.0

        # Buffer access features, one row per distinct buffer, sorted by (lines, bytes) descending.
        rows = buffer_rows(accesses, extents)
        rows.sort(key=lambda r: (r[5], r[3]), reverse=True)
        for b, row in enumerate(rows[:MAX_BUFFERS_PER_STORE]):
            f[BUF0 + 18 * b:BUF0 + 18 * (b + 1)] = row

        if n and not is_constant:
            _arith_intensity_features(f, sum(ops), accesses, extents)
        alloc_depth = self.alloc_depth.get(winfo.handle)
        if alloc_depth is not None:
            _allocation_features(f, winfo, math.prod(extents[:alloc_depth]), outer_prod)

        f[COL["outer_prod"]] = slog(outer_prod)
        f[COL["num_loops"]] = slog(n)
        f[COL["auto_unroll_max_step"]] = slog(max((lp[4] for lp in loops), default=0))

        scope = winfo.scope
        f[COL["is_constant_store"]] = 1.0 if is_constant else 0.0
        f[COL["scope_global"]] = 1.0 if scope == "global" else 0.0
        f[COL["scope_shared"]] = 1.0 if scope.startswith("shared") else 0.0
        f[COL["scope_local"]] = 1.0 if scope != "global" and not scope.startswith("shared") else 0.0
        f[COL["tree_depth"]] = slog(depth)
        f[COL["num_buffer_reads"]] = slog(len(read_loads))
        f[COL["is_reduction_update"]] = 1.0 if any(a.buf.handle == winfo.handle for a in accesses[1:]) else 0.0
        return f


# Steps of ``_Walker._leaf_features`` that fill one group of a leaf's features ``f`` in place.

def _loop_kind_features(f: list[float], loops: list, extents: list[float], spatial_loops: set) -> None:
    """Loop kinds (vectorize, unroll, parallel: number, extent product, innermost length and where the
    innermost one sits) and thread-binding extents."""
    n = len(loops)
    for k_i, for_kind in enumerate((2, 3, 1)):
        idx = [i for i, lp in enumerate(loops) if lp[2] == for_kind]
        col = 16 + 11 * k_i
        if not idx:
            f[col + 3] = 1.0  # position "none"
            continue
        inner = idx[-1]
        f[col] = slog(len(idx))
        f[col + 1] = slog(math.prod(extents[i] for i in idx))
        f[col + 2] = slog(extents[inner])
        where = 0 if inner == n - 1 else (2 if inner == 0 else 1)
        f[col + 4 + where + (0 if inner in spatial_loops else 3)] = 1.0
    for lp in loops:
        if lp[3]:
            col = COL.get("thread_vthread_len" if lp[3].startswith("vthread") else f"thread_{lp[3]}_len")
            if col is not None:
                f[col] = slog(lp[1])


def _arith_intensity_features(f: list[float], flops_per_iter: float, accesses: list[Access],
                              extents: list[float]) -> None:
    """Arithmetic intensity curve: flops over unique bytes within the innermost j loops, j = 1..n,
    sampled at ARITH_INTENSITY_SAMPLES evenly spaced depths."""
    n = len(extents)
    ai, inner_prod = [], 1.0
    for j in range(n):
        inner_prod *= extents[n - 1 - j]
        uniq = 0.0  # left to right, as the C++ port does (sum() compensates rounding from Python 3.12)
        for a in accesses:
            uniq += a.unique_by_depth[j] * a.buf.elem_bytes
        ai.append(flops_per_iter * inner_prod / max(uniq, 1.0))
    for s_i in range(ARITH_INTENSITY_SAMPLES):
        x = s_i * (n - 1) / (ARITH_INTENSITY_SAMPLES - 1)
        lo = int(x)
        hi = min(lo + 1, n - 1)
        f[AI0 + s_i] = slog(ai[lo] + (ai[hi] - ai[lo]) * (x - lo))


def _allocation_features(f: list[float], winfo: BufferInfo, alloc_outer: float, outer_prod: float) -> None:
    """Allocation of the written buffer, when this program allocates it (``alloc_outer``: extent product of
    the loops around the allocation)."""
    size = winfo.size * winfo.elem_bytes
    f[COL["alloc_size"]] = slog(size)
    f[COL["alloc_prod"]] = slog(size * alloc_outer)
    f[COL["alloc_outer_prod"]] = slog(alloc_outer)
    f[COL["outer_prod_d_alloc_outer_prod"]] = slog(outer_prod / alloc_outer)


_OPERANDS_WITHOUT_OPS = (tirx.IntImm, tirx.FloatImm, tvm.ir.StringImm, tirx.Var)
_MATH_FUNCS = frozenset({
    "exp", "exp2", "exp10", "log", "log2", "log10", "log1p", "sqrt", "rsqrt", "tanh", "sigmoid", "erf",
    "pow", "sin", "cos", "tan", "atan", "asin", "acos", "sinh", "cosh", "fabs", "floor", "ceil", "round",
    "trunc", "nearbyint", "fmod", "popcount", "clz",
})


def extract_compact_ast_python(func: tirx.PrimFunc, is_gpu: bool) -> CompactAST:
    """Build the compact AST of one scheduled PrimFunc (``cand.sch.mod["main"]``) in Python: the reference
    and fallback of the compiled extractor (``native.py``; use ``features.extract_compact_ast``)."""
    walker = _Walker(is_gpu=is_gpu)
    walker.visit(func.body)
    if walker.leaves:
        leaf_features = np.asarray(walker.leaves, dtype=np.float32)
    else:  # A program with no store (possible for degenerate inputs) still gets one all-zero leaf.
        leaf_features = np.zeros((1, FEATURE_DIM), dtype=np.float32)
        walker.leaf_node_ids.append(0)
    return CompactAST(
        leaf_features=leaf_features,
        preorder_position=np.asarray(walker.leaf_node_ids, dtype=np.int32),
        parent=np.asarray(walker.parent, dtype=np.int32),
        node_kind=np.asarray(walker.node_kind, dtype=np.int32),
        node_extent=np.asarray(walker.node_extent, dtype=np.int32),
    )


def is_gpu_target(target: tvm.target.Target) -> bool:
    return target.kind.name in ("cuda", "rocm", "vulkan", "metal", "opencl", "webgpu")
