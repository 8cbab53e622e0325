"""The unit of work every workload source produces: one TIR PrimFunc to tune, with its weight."""

from __future__ import annotations

from dataclasses import dataclass, field

import tvm
from tvm import tirx


# eq=False: IRModules compare by reference, so a generated __eq__ would be misleading.
# Structural comparison of tasks lives in suite.py.
@dataclass(eq=False)
class Task:
    """One tuning task.

    name:    unique within one load_workload / network_tasks result, e.g. "C2D-0" or
             "resnet18.fused_conv2d_add_relu".
    mod:     IRModule whose "main" is the PrimFunc to tune.
    weight:  how many times the PrimFunc runs in one inference of its sources, summed over sources.
    tags:    the sources (operator names, network tags, file stems) the task comes from.
    weights: weight per source tag; sum(weights.values()) == weight. A task shared by two
             networks after suite de-duplication keeps one entry per network here.
    """

    name: str
    mod: tvm.IRModule
    weight: float = 1.0
    tags: tuple[str, ...] = ()
    weights: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_source(cls, name: str, mod: tvm.IRModule, source: str, weight: float = 1.0) -> Task:
        """A task that comes from exactly one source, tagged with it."""
        return cls(name=name, mod=mod, weight=float(weight), tags=(source,), weights={source: float(weight)})

    @property
    def prim_func(self) -> tirx.PrimFunc:
        return self.mod["main"]


def as_main_module(func: tirx.PrimFunc | tvm.IRModule) -> tvm.IRModule:
    """Normalize a PrimFunc (or single-PrimFunc IRModule) to an IRModule with "main".

    Like meta_schedule.tune_context._normalize_mod, except that global_symbol is always "main":
    the symbol is part of structural equality, so a function named `matmul` in a TVMScript file
    would otherwise never match the same program from te_workload or a network (whose extracted
    tasks are all "main").
    """
    if isinstance(func, tvm.IRModule):
        prim_funcs = [f for f in func.functions.values() if isinstance(f, tirx.PrimFunc)]
        if len(prim_funcs) != 1:
            # Several PrimFuncs cannot be one tuning task; dropping the extras silently would hide a mistake.
            names = sorted(gv.name_hint for gv in func.get_global_vars())
            raise ValueError(f"IRModule must hold exactly one PrimFunc, found {len(prim_funcs)} among {names}")
        func = prim_funcs[0]
    if not isinstance(func, tirx.PrimFunc):
        raise TypeError(f"expected a PrimFunc or IRModule, got {type(func).__name__}")
    func = func.with_attr("global_symbol", "main").with_attr("tirx.noalias", True)
    return tvm.IRModule({"main": func})
