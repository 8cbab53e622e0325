"""Example TVMScript workload: C[i, j] = sum_k A[i, k] * B[k, j], 128x128x128, float32.

Load it with `cdmpp_tvm.workloads.load_workload("configs/workloads/example_matmul.py", target)`.
A workload file holds exactly one @T.prim_func (or one @I.ir_module class) at module level; its
name does not matter (the loader registers it as "main").
`s_tir=True` is required in TVM 0.27 for functions written with T.sblock: without it the TIR
well-formedness check rejects the SBlockRealize statements.
"""

from tvm.script import tirx as T


@T.prim_func(s_tir=True)
def matmul(
    A: T.Buffer((128, 128), "float32"),
    B: T.Buffer((128, 128), "float32"),
    C: T.Buffer((128, 128), "float32"),
):
    T.func_attr({"tirx.noalias": True})
    for i, j, k in T.grid(128, 128, 128):
        with T.sblock("C"):
            v_i, v_j, v_k = T.axis.remap("SSR", [i, j, k])
            with T.init():
                C[v_i, v_j] = T.float32(0.0)
            C[v_i, v_j] = C[v_i, v_j] + A[v_i, v_k] * B[v_k, v_j]
