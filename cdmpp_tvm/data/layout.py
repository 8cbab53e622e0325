"""Where a collection puts things: file names, task directories, and the raw lines of a record file.

A collection (``cdmpp-tvm collect --out DIR``) is ``DIR/manifest.json`` plus one directory per task
(``task_dir_name``) holding a standard MetaSchedule JSON database (``database_workload.json``,
``database_tuning_record.json``) and ``task.json``. Every other data module takes these names from here.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from tvm.s_tir.meta_schedule.utils import shash2hex

from ..workloads import Task

RECORD_FILE = "database_tuning_record.json"
WORKLOAD_FILE = "database_workload.json"
MANIFEST = "manifest.json"
TASK_FILE = "task.json"
TASK_CACHE = "tasks.cache.json"  # the collection's extracted tasks (workloads.task_cache)


def file_name_part(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_``, ``.`` and ``-`` made one ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def task_dir_name(task: Task) -> str:
    """Stable across runs (resume finds the same directory): readable name + workload hash."""
    return f"{file_name_part(task.name)[:80]}-{shash2hex(task.mod)[2:12]}"


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def trace_key(record_json) -> str:
    """Identity of a program in a database line: its trace JSON (the same text in the selection's
    database and in the measured one)."""
    return json.dumps(record_json[0], sort_keys=True, separators=(",", ":"))


def database_lines(path: Path) -> list[tuple[int, list]]:
    """(workload index, record JSON) of every parsable line of a tuning-record file."""
    out = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                wl_index, rec = json.loads(line)
                out.append((int(wl_index), rec))
            except (ValueError, TypeError):
                continue  # a truncated last line of a killed run: that program is measured again
    return out
