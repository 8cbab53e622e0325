"""Built-in single-operator workloads, from MetaSchedule's te_workload helpers."""

from __future__ import annotations

from collections.abc import Callable

from tvm import te, tirx
from tvm.s_tir.meta_schedule.testing import te_workload

from ..errors import UserError
from .task import Task, as_main_module

# C2D_WIN_NHWC (Winograd) raises "LEGACY-FLOW triggered" in create_prim_func on TVM 0.27.
_BROKEN_FAMILIES = frozenset({"C2D_WIN_NHWC"})


def _te(make_tensors: Callable[[], tuple]) -> Callable[[], tirx.PrimFunc]:
    return lambda: te.create_prim_func(make_tensors())


def _named_operators() -> dict[str, Callable[[], tirx.PrimFunc]]:
    ops = {
        "matmul": _te(lambda: te_workload.matmul(512, 512, 512)),
        "matmul-small": _te(lambda: te_workload.matmul(64, 64, 64)),
        # ResNet-18 stage-1 3x3 conv.
        "conv2d": _te(lambda: te_workload.conv2d_nhwc(1, 56, 56, 64, 64, 3, stride=1, padding=1)),
        "conv2d-small": _te(lambda: te_workload.conv2d_nhwc(1, 14, 14, 16, 16, 3, stride=1, padding=1)),
    }
    # "C2D-0" .. "TBG-3": family + index into te_workload.CONFIGS[family]'s shape list.
    for family, (_, shapes) in te_workload.CONFIGS.items():
        if family in _BROKEN_FAMILIES:
            continue
        for idx in range(len(shapes)):
            ops[f"{family}-{idx}"] = lambda family=family, idx=idx: te_workload.create_te_workload(family, idx)
    return ops


OPERATORS: dict[str, Callable[[], tirx.PrimFunc]] = _named_operators()


def list_operators() -> list[str]:
    return list(OPERATORS)


def operator_task(name: str) -> Task:
    """The task for a built-in operator name; ValueError (listing valid names) if unknown."""
    if name not in OPERATORS:
        raise UserError(f"unknown operator {name!r}; valid operators: {', '.join(OPERATORS)}")
    return Task.from_source(name, as_main_module(OPERATORS[name]()), source=name)
