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

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..atomic_io import write_json_atomic
from ..errors import UserError
from .layout import MANIFEST, TASK_FILE, WORKLOAD_FILE
from .reader import find_databases, workload_hashes


@dataclass
class TaskDir:
    path: Path
    name: str
    workload: str  # workload hash
    tags: tuple[str, ...]
    device: str


def index_tasks(roots: str | os.PathLike | list[str | os.PathLike]) -> list[TaskDir]:
    """Every database under ``roots`` (one directory or several) with its task facts and device
    (``manifest.json``). The facts come from ``task.json``; a database without one (e.g. the bootstrap
    set, collected before task.json existed) is an untagged task named after its directory, identified
    by the workload its workload file defines, so a cross-model split still puts it on the held-out side
    when a held-out network has the same workload."""
    roots = [Path(r) for r in (roots if isinstance(roots, list) else [roots])]
    out = []
    for root in roots:
        for d in find_databases([root]):
            manifest = _find_manifest(d, root)
            device = manifest.get("device", "unknown") if manifest else "unknown"
            info_path = d / TASK_FILE
            if info_path.exists():
                info = json.loads(info_path.read_text())
                out.append(TaskDir(d, info["name"], info["workload"], tuple(info.get("tags", ())), device))
                continue
            workloads = workload_hashes(d)
            if len(workloads) != 1:
                raise UserError(f"{d}: no {TASK_FILE}, and its {WORKLOAD_FILE} defines {len(workloads)} workloads "
                                f"(a split needs one per database)")
            out.append(TaskDir(d, d.name, workloads.pop(), (), device))
    return out


def _find_manifest(d: Path, root: Path) -> dict | None:
    for p in [d, *d.parents]:
        if (p / MANIFEST).exists():
            return json.loads((p / MANIFEST).read_text())
        if p == root:
            break
    return None


def network_of(tag: str) -> str:
    """The network of a source tag: ``resnet18-bs8`` -> ``resnet18`` (see workloads.network_tag)."""
    return re.sub(r"-bs\d+$", "", tag)


def cross_model_split(tasks: list[TaskDir], held_out: list[str], extra_workloads: set[str] = frozenset()) -> dict:
    """Test = every task of a held-out network, at every batch size it was collected at (``resnet18``
    holds out ``resnet18-bs8`` too; a tag with a batch size, e.g. ``resnet18-bs8``, holds out that one),
    and every task whose workload is in ``extra_workloads`` (the held-out networks' workloads as extracted
    now: a task collected under another network's name carries no held-out tag)."""
    def held(tag: str) -> bool:
        return tag in held_out or network_of(tag) in held_out

    tags = {t for task in tasks for t in task.tags}
    unknown = [n for n in held_out if n not in tags | {network_of(t) for t in tags}]
    if unknown:
        raise UserError(f"held-out network(s) {unknown} occur in no task; known tags: {sorted(tags)}")
    test_workloads = {t.workload for t in tasks if any(held(g) for g in t.tags)} | set(extra_workloads)
    params = {"held_out": list(held_out)}
    if extra_workloads:
        params["held_out_workloads"] = sorted(extra_workloads)
    return split_by_predicate("cross-model", params, tasks,
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


def split_digest(path: str | os.PathLike) -> str:
    """A short digest of a split file's bytes: results record it, so that a split that changed since
    (the dataset grew) is noticed."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
