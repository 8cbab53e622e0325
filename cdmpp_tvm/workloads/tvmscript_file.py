"""Load a user-written TVMScript .py file as a tuning workload.

The file must define exactly one workload at module level: a `@T.prim_func(s_tir=True)` function,
or an `@I.ir_module` class (or any IRModule object) holding one PrimFunc. See
configs/workloads/example_matmul.py.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import tvm
from tvm import tirx

from ..errors import UserError
from .task import as_main_module


class WorkloadFileError(UserError):
    """A workload file exists but cannot be turned into one workload; the message names the file."""


# Each load gets a fresh module name so two files (or two loads of one file) never share state.
_module_counter = itertools.count()


def load_tvmscript_file(path: str | Path) -> tvm.IRModule:
    """Execute a TVMScript file and return its single workload as an IRModule with "main"."""
    path = Path(path)
    if not path.is_file():
        raise WorkloadFileError(f"workload file not found: {path}")
    namespace = _execute(path)
    workloads = _module_level_workloads(namespace)
    if len(workloads) != 1:
        found = ", ".join(workloads) or "none"
        raise WorkloadFileError(
            f"{path}: expected exactly one @T.prim_func or IRModule at module level, found {len(workloads)} ({found})"
        )
    (name, workload), = workloads.items()
    try:
        return as_main_module(workload)
    except (ValueError, TypeError) as err:
        raise WorkloadFileError(f"{path}: {name}: {err}") from err


def _execute(path: Path) -> dict:
    module_name = f"_cdmpp_workload_file_{next(_module_counter)}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    # The TVMScript parser re-reads source through inspect, which finds a class's file via
    # sys.modules[cls.__module__]; so the module must be registered while it executes.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        raise WorkloadFileError(f"{path}: Python syntax error at line {err.lineno}: {err.msg}") from err
    except tvm.error.DiagnosticError as err:
        raise WorkloadFileError(f"{path}: TVMScript parse error: {err}") from err
    except Exception as err:  # any failure while running user code is reported against the file
        raise WorkloadFileError(f"{path}: executing the file raised {type(err).__name__}: {err}") from err
    finally:
        del sys.modules[module_name]
    return vars(module)


def _module_level_workloads(namespace: dict) -> dict[str, tirx.PrimFunc | tvm.IRModule]:
    workloads: dict[str, tirx.PrimFunc | tvm.IRModule] = {}
    seen_ids: set[int] = set()
    for name, value in namespace.items():
        # An alias (main = my_func) is the same object, not a second workload.
        if isinstance(value, (tirx.PrimFunc, tvm.IRModule)) and id(value) not in seen_ids:
            seen_ids.add(id(value))
            workloads[name] = value
    return workloads
