"""Extracted tasks kept in a file, so that resuming a long collection does not extract every network again.

Extracting the tasks of a large suite (torch.export, Relax import, legalize/fuse, extract_tasks for
every network) takes minutes: about 6-10 for the 68 entries of dataset-cpu-v2 on the 2-core machine.
``load_tasks_cached`` writes the tasks (name, tags, weights and the IRModule as TVM JSON) next to the
collection; a later run with the same specs, target, suite files and workload sources reads them back in
seconds. Anything that could change the tasks (the suite files, the workload package's source, the
target, TVM's and torch's versions) is part of the key, so a stale cache is never used: it is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from importlib import metadata
from pathlib import Path

import tvm

from ..atomic_io import write_text_atomic
from . import load_tasks
from .suite import list_suites, resolve_suite_path
from .task import Task

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
_PACKAGE_DIR = Path(__file__).resolve().parent


def load_tasks_cached(specs: list[str], target: tvm.target.Target, cache_path: str | os.PathLike) -> list[Task]:
    """``load_tasks(specs, target)``, read from ``cache_path`` when it was written for the same inputs,
    else extracted and written there (atomically)."""
    path = Path(cache_path)
    key = _cache_key(specs, target)
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            if cached.get("key") == key:
                tasks = [Task(t["name"], tvm.ir.load_json(t["mod"]), t["weight"], tuple(t["tags"]), dict(t["weights"]))
                         for t in cached["tasks"]]
                logger.info("%d tasks read from %s", len(tasks), path)
                return tasks
            logger.info("%s was written for other specs, sources or versions; extracting the tasks again", path)
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("%s: unreadable task cache (%s: %s); extracting the tasks again", path, type(e).__name__, e)
    tasks = load_tasks(specs, target)
    payload = {"key": key, "tasks": [{"name": t.name, "weight": t.weight, "tags": list(t.tags), "weights": t.weights,
                                      "mod": tvm.ir.save_json(t.mod)} for t in tasks]}
    write_text_atomic(path, json.dumps(payload))
    return tasks


def _cache_key(specs: list[str], target: tvm.target.Target) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": CACHE_VERSION, "specs": list(specs), "target": str(target),
                         "tvm": _version("apache-tvm"), "torch": _version("torch")}).encode())
    for spec in specs:
        if spec in list_suites() or spec.endswith((".yaml", ".yml")):
            h.update(resolve_suite_path(spec).read_bytes())
        elif spec.endswith(".py"):
            h.update(Path(spec).read_bytes())
    for source in sorted(_PACKAGE_DIR.glob("*.py")):  # network definitions, operators, extraction
        h.update(source.name.encode() + source.read_bytes())
    return h.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
