"""The compact-AST featurizer on TIR whose tree we know by construction, and the compiled extractor
against the Python reference on sampled candidates."""
import os
import re

import numpy as np
import pytest
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.script import tirx as T

from cdmpp_tvm.features import (
    FEATURE_DIM,
    FEATURE_NAMES,
    CompactASTFeaturizer,
    collate,
    extract_compact_ast,
    native_status,
)
from cdmpp_tvm.features import native
from cdmpp_tvm.features.compact_ast import (
    NODE_ROOT,
    NODE_SERIAL,
    NODE_STORE,
    NODE_VECTORIZED,
    extract_compact_ast_python,
)
from cdmpp_tvm.features.native import extract_compact_ast_native
from cdmpp_tvm.features.schema import slog
from cdmpp_tvm.workloads import load_workload
from tvm_patches.candidates import sample_candidates

COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


@T.prim_func(s_tir=True)
def matmul_16(A: T.Buffer((16, 16), "float32"), B: T.Buffer((16, 16), "float32"), C: T.Buffer((16, 16), "float32")):
    for i, j, k in T.grid(16, 16, 16):
        with T.sblock("C"):
            vi, vj, vk = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[vi, vj] = T.float32(0.0)
            C[vi, vj] = C[vi, vj] + A[vi, vk] * B[vk, vj]


@T.prim_func(s_tir=True)
def two_nests(A: T.Buffer((8,), "float32"), B: T.Buffer((8,), "float32"), C: T.Buffer((8,), "float32")):
    for i in range(8):
        with T.sblock("B"):
            vi = T.axis.remap("S", [i])
            B[vi] = A[vi] * T.float32(2.0)
    for j in T.vectorized(8):
        with T.sblock("C"):
            vj = T.axis.remap("S", [j])
            C[vj] = T.exp(B[vj])


def test_matmul_tree_leaves_and_preorder_positions():
    ast = extract_compact_ast(matmul_16, is_gpu=False)
    # root(0) -> i(1) -> j(2) -> k(3) -> {init store(4), update store(5)}
    assert ast.n_nodes == 6
    assert ast.parent.tolist() == [-1, 0, 1, 2, 3, 3]
    assert ast.node_kind.tolist() == [NODE_ROOT, NODE_SERIAL, NODE_SERIAL, NODE_SERIAL, NODE_STORE, NODE_STORE]
    assert ast.node_extent.tolist() == [1, 16, 16, 16, 1, 1]
    # One leaf per store, not per buffer: the init store and the update store of C are two leaves.
    assert ast.n_leaves == 2
    assert ast.preorder_position.tolist() == [4, 5]
    assert ast.leaf_features.shape == (2, FEATURE_DIM)
    init, update = ast.leaf_features
    assert init[COL["is_constant_store"]] == 1 and update[COL["is_constant_store"]] == 0
    assert update[COL["is_reduction_update"]] == 1
    # 16^3 iterations, one float add and one float mul each.
    assert np.isclose(update[COL["float_addsub"]], slog(16 ** 3))
    assert np.isclose(update[COL["float_mul"]], slog(16 ** 3))
    assert init[COL["float_addsub"]] == 0
    assert np.isclose(update[COL["outer_prod"]], slog(16 ** 3))
    # C is read and written by the update; it is reused across k (its index does not move with k).
    assert update[COL["buf0_acc_readwrite"]] + update[COL["buf1_acc_readwrite"]] + update[COL["buf2_acc_readwrite"]] == 1


def test_sibling_nests_vectorize_and_math_functions():
    ast = extract_compact_ast(two_nests, is_gpu=False)
    # root(0) -> i(1) -> store(2); root -> j(3, vectorized) -> store(4)
    assert ast.parent.tolist() == [-1, 0, 1, 0, 3]
    assert ast.node_kind.tolist() == [NODE_ROOT, NODE_SERIAL, NODE_STORE, NODE_VECTORIZED, NODE_STORE]
    assert ast.preorder_position.tolist() == [2, 4]
    first, second = ast.leaf_features
    assert first[COL["vectorize_num"]] == 0 and first[COL["vectorize_pos_none"]] == 1
    assert np.isclose(second[COL["vectorize_len"]], slog(8)) and second[COL["vectorize_pos_inner_spatial"]] == 1
    assert np.isclose(second[COL["float_math_func"]], slog(8))
    assert np.isclose(first[COL["float_mul"]], slog(8))


def test_scheduled_candidates_cache_and_padding(host_target):
    mod = tvm.IRModule({"main": matmul_16})
    cands = sample_candidates(mod, host_target, 8, seed=1)
    fz = CompactASTFeaturizer(cache=True)
    asts = fz.featurize([c.sch.mod for c in cands], is_gpu=False)
    assert fz.misses == len({tvm.ir.save_json(c.sch.mod) for c in cands}) and fz.hits == len(cands) - fz.misses
    again = fz.featurize([c.sch.mod for c in cands], is_gpu=False)
    assert fz.hits >= len(cands) and all(a is b for a, b in zip(asts, again))
    # Uncached (the default with the compiled walker): every program featurized afresh, the same features.
    fresh = CompactASTFeaturizer(cache=False)
    fresh_asts = fresh.featurize([c.sch.mod for c in cands], is_gpu=False)
    assert fresh.uncached == len(cands) and fresh.hits == fresh.misses == 0
    assert all(np.array_equal(a.leaf_features, b.leaf_features) for a, b in zip(asts, fresh_asts))
    assert CompactASTFeaturizer().cache is None  # decided per call by which walker runs
    for a in asts:
        assert np.all(np.isfinite(a.leaf_features))
        # Leaves are the tree's store nodes, in pre-order.
        assert a.preorder_position.tolist() == np.nonzero(a.node_kind == NODE_STORE)[0].tolist()


def test_many_leaves_are_padded_never_dropped():
    stores = "\n".join(f"        B[{i}] = A[{i}] + T.float32({i})" for i in range(40))
    src = f"""
# from tvm.script import tirx as T
@T.prim_func
def many(A: T.Buffer((40,), "float32"), B: T.Buffer((40,), "float32")):
    for _ in range(2):
{stores}
"""
    big = extract_compact_ast(tvm.script.from_source(src), is_gpu=False)
    small = extract_compact_ast(matmul_16, is_gpu=False)
    assert big.n_leaves == 40
    batch = collate([small, big])
    assert batch.features.shape == (2, 40, FEATURE_DIM)
    assert batch.mask.sum(1).tolist() == [2, 40]
    assert np.all(batch.features[0, 2:] == 0) and batch.positions[1, 39] == big.preorder_position[39]


# ---------------------------------------------------------------- the compiled extractor (native.py)

# Sampled with the plain CUDA rules (no tensor intrinsics to import); sampling needs no GPU.
CUDA_TARGET = {"kind": "cuda", "arch": "sm_90", "max_threads_per_block": 1024,
               "max_shared_memory_per_block": 49152, "thread_warp_size": 32}
_ARRAYS = ("preorder_position", "parent", "node_kind", "node_extent")


def _require_native():
    """The native extractor must have loaded: a failure, not a skip, unless it cannot be built here
    (no C++ compiler or ninja) or was switched off explicitly."""
    missing = native.missing_build_tools()
    if missing:
        pytest.skip(f"native compact-AST featurizer cannot be built here: {missing}")
    if os.environ.get(native.ENV_SWITCH, "1").strip() == "0":
        pytest.skip(f"native compact-AST featurizer switched off ({native.ENV_SWITCH}=0)")
    status = native_status()
    assert status["loaded"], f"native compact-AST featurizer did not load: {status['reason']}"


def _assert_same(func, is_gpu: bool) -> float:
    """Native and Python features of ``func`` agree; returns the largest leaf-feature difference."""
    ref = extract_compact_ast_python(func, is_gpu)
    got = extract_compact_ast_native(func, is_gpu)
    assert got.leaf_features.dtype == np.float32 and got.leaf_features.shape == ref.leaf_features.shape
    for name in _ARRAYS:
        assert getattr(got, name).dtype == np.int32
        assert np.array_equal(getattr(got, name), getattr(ref, name)), name
    return float(np.max(np.abs(got.leaf_features - ref.leaf_features)))


# (workload, target kind, columns that must be non-zero in some leaf: the paths the sample exercises)
NATIVE_CASES = [
    ("conv2d-small", "llvm", ["is_constant_store", "is_reduction_update", "select_op", "parallel_num",
                              "vectorize_num", "alloc_size"]),  # reduction init, padding if_then_else
    ("CBR-0", "llvm", ["float_cmp", "is_reduction_update"]),  # conv2d + bias + bn + relu epilogue
    ("SFM-0", "llvm", ["float_math_func", "float_divmod"]),  # softmax: exp, max/sum reductions
    ("matmul-small", "llvm", ["float_mul", "buf2_reuse_loop_multiple_read"]),
    ("conv2d-small", "cuda", ["thread_threadIdx.x_len", "thread_blockIdx.x_len", "thread_vthread_len",
                              "scope_shared", "scope_local", "is_gpu"]),
    ("matmul-small", "cuda", ["thread_threadIdx.x_len", "scope_shared", "alloc_outer_prod"]),
]


@pytest.mark.parametrize("workload,kind,exercised", NATIVE_CASES, ids=[f"{w}-{k}" for w, k, _ in NATIVE_CASES])
def test_native_features_equal_python_on_sampled_candidates(host_target, workload, kind, exercised):
    _require_native()
    mod = load_workload(workload, host_target)[0].mod
    if kind == "cuda":
        rules = ms.space_generator.PostOrderApply(sch_rules="cuda", postprocs="cuda", mutator_probs="cuda")
        cands = sample_candidates(mod, tvm.target.Target(CUDA_TARGET), 50, seed=1, space_generator=rules)
    else:
        cands = sample_candidates(mod, host_target, 50, seed=1)
    assert len(cands) >= 40
    is_gpu = kind == "cuda"
    worst = max(_assert_same(c.sch.mod["main"], is_gpu) for c in cands)
    assert worst <= 1e-5
    leaves = np.concatenate([extract_compact_ast_native(c.sch.mod["main"], is_gpu).leaf_features for c in cands])
    assert [name for name in exercised if not np.any(leaves[:, COL[name]] != 0)] == []


ODD_SOURCE = '''
# from tvm.script import tirx as T
@T.prim_func
def odd(A: T.Buffer((64, 64), "float32"), B: T.Buffer((64,), "float32"), C: T.Buffer((64, 64), "float16"),
        I: T.Buffer((64,), "int32"), n: T.int32):
    S = T.alloc_buffer((64,), "float32", scope="shared")
    for i in T.parallel(64, annotations={"pragma_auto_unroll_max_step": 16}):
        for j in T.vectorized(n):
            if i < 32:
                C[i, j] = T.Cast("float16", T.exp(A[i, T.min(j * 2, 63)]) + T.if_then_else(j > 3, A[j, i], T.float32(1)))
            else:
                C[i, j] = T.Cast("float16", T.Select(j > i, T.sqrt(A[i // n, j % 7]), T.max(A[i, j], B[j])))
        for k in T.unroll(4):
            with T.attr(0, "pragma_x", 1):
                B[i] = B[i] + S[k * 16 + i // 4] * T.float32(3) / T.float32(2)
        for t in T.thread_binding(8, thread="threadIdx.y"):
            I[t * 8 + i // 8] = I[i] * 3 + T.shift_left(I[t], 1) - (I[t] & 7)
        for w in range(I[i]):
            S[w] = T.float32(0)
'''


def test_native_features_equal_python_on_unusual_statements():
    """What sampled schedules rarely hold: if/else statements, attribute statements, AllocBuffer, a
    symbolic extent and divisor, unrolled and thread-bound loops, casts, selects, shifts, bit operations."""
    _require_native()
    odd = tvm.script.from_source(ODD_SOURCE)
    for func in (odd, matmul_16, two_nests):
        for is_gpu in (False, True):
            assert _assert_same(func, is_gpu) == 0.0


def test_refused_program_falls_back_to_python_and_is_counted(monkeypatch, caplog):
    def refuse(func, is_gpu):
        raise ValueError("cdmpp native featurizer: injected refusal")

    monkeypatch.setattr(native._NATIVE, "tried", True)
    monkeypatch.setattr(native._NATIVE, "extract", refuse)
    monkeypatch.setattr(native._NATIVE, "warned_program", False)
    before = native_status()["fallback_calls"]
    got = extract_compact_ast(matmul_16, is_gpu=False)
    extract_compact_ast(two_nests, is_gpu=False)
    ref = extract_compact_ast_python(matmul_16, is_gpu=False)
    assert np.array_equal(got.leaf_features, ref.leaf_features) and np.array_equal(got.parent, ref.parent)
    assert native_status()["fallback_calls"] == before + 2
    assert caplog.text.count("injected refusal") == 1  # warned once


def test_native_switch_and_missing_compiler_fall_back_with_a_reason(monkeypatch, caplog):
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    off = native._Native()
    assert off.load() is None and off.reason == f"disabled by {native.ENV_SWITCH}=0"
    monkeypatch.delenv(native.ENV_SWITCH)
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    no_cxx = native._Native()
    assert no_cxx.load() is None and "no C++ compiler" in no_cxx.reason
    assert "no C++ compiler" in caplog.text


def test_auto_unroll_step_of_meta_schedule_candidates_is_a_feature(host_target):
    """MetaSchedule 0.27 annotates loops with pragma_auto_unroll_max_step as a plain int (0, 16, 64 or 512
    on CPU); schema compact-ast-v1 read it as 0 on every program. Both walkers see it now."""
    mod = tvm.IRModule({"main": matmul_16})
    cands = sample_candidates(mod, host_target, 24, seed=3)
    seen = set()
    for c in cands:
        func = c.sch.mod["main"]
        steps = [int(v) for v in re.findall(r'pragma_auto_unroll_max_step": (\d+)', func.script())]
        want = slog(max(steps, default=0))
        for extract in (extract_compact_ast_python, extract_compact_ast):
            got = extract(func, False).leaf_features[:, COL["auto_unroll_max_step"]]
            assert np.isclose(got.max(), want), (steps, got)
        seen.add(max(steps, default=0))
    assert len(seen - {0}) >= 2  # the sample holds several non-zero steps
