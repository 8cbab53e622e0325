"""The compact-AST featurizer on TIR whose tree we know by construction."""
import numpy as np
import tvm
from tvm.script import tirx as T

from cdmpp_tvm.features import (
    FEATURE_DIM,
    FEATURE_NAMES,
    CompactASTFeaturizer,
    collate,
    extract_compact_ast,
)
from cdmpp_tvm.features.compact_ast import NODE_ROOT, NODE_SERIAL, NODE_STORE, NODE_VECTORIZED
from cdmpp_tvm.features.schema import slog
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
    fz = CompactASTFeaturizer()
    asts = fz.featurize([c.sch.mod for c in cands], is_gpu=False)
    assert fz.misses == len({tvm.ir.save_json(c.sch.mod) for c in cands}) and fz.hits == len(cands) - fz.misses
    again = fz.featurize([c.sch.mod for c in cands], is_gpu=False)
    assert fz.hits >= len(cands) and all(a is b for a, b in zip(asts, again))
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
