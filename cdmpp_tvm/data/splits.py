"""Train/test splits of a collected dataset, written as JSON files.

* **cross-model** (``held_out`` networks): test = every task that occurs in a held-out network;
  train = every other task. A task shared by a training network and a held-out network is in test
  only (the original CDMPP put such tasks in both; here nothing of a held-out network is seen in
  training). Tasks are identified by workload hash, so the same workload collected twice (two
  directories) also lands on one side.
* **cross-device** (``test_devices``): test = databases measured on those devices (from each
  collection's ``manifest.json``), train = the rest.

A split file: ``{"kind", "held_out" | "test_devices", "root", "train": [dirs], "test": [dirs],
"n_train_tasks", "n_test_tasks"}`` with directories relative to ``root``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..atomic_io import write_json_atomic
from ..errors import UserError
from .layout import MANIFEST, TASK_FILE
from .reader import find_databases


@dataclass
class TaskDir:
    path: Path
    name: str
    workload: str  # workload hash
    tags: tuple[str, ...]
    device: str


def index_tasks(root: str | os.PathLike) -> list[TaskDir]:
    """Every database under ``root`` with its task facts (``task.json``) and device (``manifest.json``)."""
    root = Path(root)
    out = []
    for d in find_databases([root]):
        info_path = d / TASK_FILE
        if not info_path.exists():
            raise UserError(f"{d}: no {TASK_FILE}; splits need the task facts `cdmpp-tvm collect` writes")
        info = json.loads(info_path.read_text())
        manifest = _find_manifest(d, root)
        out.append(TaskDir(d, info["name"], info["workload"], tuple(info.get("tags", ())),
                           manifest.get("device", "unknown") if manifest else "unknown"))
    return out


def _find_manifest(d: Path, root: Path) -> dict | None:
    for p in [d, *d.parents]:
        if (p / MANIFEST).exists():
            return json.loads((p / MANIFEST).read_text())
        if p == root:
            break
    return None


def cross_model_split(tasks: list[TaskDir], held_out: list[str]) -> dict:
    tags = {t for task in tasks for t in task.tags}
    unknown = [n for n in held_out if n not in tags]
    if unknown:
        raise UserError(f"held-out network(s) {unknown} occur in no task; known tags: {sorted(tags)}")
    test_workloads = {t.workload for t in tasks if set(t.tags) & set(held_out)}
    return split_by_predicate("cross-model", {"held_out": list(held_out)}, tasks,
                              lambda t: t.workload in test_workloads)


def cross_device_split(tasks: list[TaskDir], test_devices: list[str]) -> dict:
    devices = {t.device for t in tasks}
    unknown = [d for d in test_devices if d not in devices]
    if unknown:
        raise UserError(f"test device(s) {unknown} measured in no database; known: {sorted(devices)}")
    return split_by_predicate("cross-device", {"test_devices": list(test_devices)}, tasks,
                              lambda t: t.device in test_devices)


def split_by_predicate(kind: str, params: dict, tasks: list[TaskDir], is_test) -> dict:
    """A split file's dict: test = the tasks ``is_test`` holds for, train = the others."""
    test = [t for t in tasks if is_test(t)]
    train = [t for t in tasks if not is_test(t)]
    if not test or not train:
        raise UserError(f"{kind} split {params} leaves {'no test' if not test else 'no training'} tasks")
    root = Path(os.path.commonpath([str(t.path) for t in tasks]))
    return {"kind": kind, **params, "root": str(root),
            "train": sorted(str(t.path.relative_to(root)) for t in train),
            "test": sorted(str(t.path.relative_to(root)) for t in test),
            "n_train_tasks": len({t.workload for t in train}), "n_test_tasks": len({t.workload for t in test})}


def write_split(split: dict, path: str | os.PathLike) -> None:
    write_json_atomic(path, split)


def read_split(path: str | os.PathLike, root: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """(train dirs, test dirs) of a split file; ``root`` overrides the stored root (a moved dataset)."""
    path = Path(path)
    try:
        split = json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path}: not a split file (not JSON: {e})") from e
    for key in ("kind", "root", "train", "test"):
        if key not in split:
            raise UserError(f"{path}: not a split file (no {key!r})")
    base = Path(root) if root is not None else Path(split["root"])
    return [base / d for d in split["train"]], [base / d for d in split["test"]]
