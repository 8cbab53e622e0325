"""Tuning workloads: built-in operators, whole networks, TVMScript files and YAML suites.

    load_workload("C2D-0" | "resnet18" | "path/to/file.py", target) -> list[Task]
    load_suite("ci-tiny" | "path/to/suite.yaml", target)          -> list[Task]
    load_tasks(["ci-tiny", "resnet18", "my_op.py"], target)       -> list[Task]  (either kind, merged)

Importing this package does not import torch; it is imported when a network is first requested.
"""

from __future__ import annotations

from pathlib import Path

import tvm

from ..errors import UserError
from .networks import (
    legalize_and_fuse,
    list_networks,
    network_relax_module,
    network_tag,
    network_tasks,
)
from .operators import list_operators, operator_task
from .suite import SuiteError, list_suites, load_suite, merge_duplicate_tasks
from .task import Task, as_main_module
from .tvmscript_file import WorkloadFileError, load_tvmscript_file

__all__ = [
    "Task", "load_workload", "list_workloads", "load_suite", "SuiteError", "load_tvmscript_file",
    "WorkloadFileError", "network_tasks", "network_relax_module", "network_tag", "legalize_and_fuse",
    "list_networks", "list_operators", "as_main_module", "load_tasks", "list_suites", "merge_duplicate_tasks",
]


def list_workloads() -> list[str]:
    """Every built-in workload name: operators first, then networks. A path ending in .py is also accepted."""
    return list_operators() + list_networks()


def load_workload(spec: str, target: tvm.target.Target) -> list[Task]:
    """The tasks of one workload spec: a built-in operator name, a network name, or a TVMScript .py path.

    `target` matters only for networks (legalization and task extraction are target-specific).
    A file's task is named and tagged after the file's stem.
    """
    if spec.endswith(".py"):
        path = Path(spec)
        return [Task.from_source(path.stem, load_tvmscript_file(path), source=path.stem)]
    if spec in list_operators():
        return [operator_task(spec)]
    if spec in list_networks():
        return network_tasks(spec, target)
    raise UserError(f"unknown workload {spec!r}; valid names: {', '.join(list_workloads())}, or a path ending in .py")


def load_tasks(specs: list[str], target: tvm.target.Target) -> list[Task]:
    """The tasks of several specs, each a suite (a name in configs/workloads or a .yaml/.yml path) or a
    workload (see ``load_workload``), with structurally equal tasks merged (``merge_duplicate_tasks``).
    What every command that takes workloads or suites uses."""
    tasks: list[Task] = []
    for spec in specs:
        if spec in list_suites() or spec.endswith((".yaml", ".yml")):
            tasks += load_suite(spec, target)
        else:
            tasks += load_workload(spec, target)
    return merge_duplicate_tasks(tasks)
