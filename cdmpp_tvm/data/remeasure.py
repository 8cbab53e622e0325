"""``cdmpp-tvm plan-remeasure``: a selection of programs *already measured on another device*, to be
measured again on this one (``cdmpp-tvm collect --from-selection``).

Two devices can only be compared program by program (CDMPP's cross-device setting: the same tasks and
programs, new latencies) when the new device measures the very programs the source device measured.
``plan_remeasure`` picks tasks from measured databases at random (those with at least ``per_task``
valid, distinct programs), up to ``per_task`` valid programs of each at random, and writes them as a
selection directory (``data.selection_files``): the source lines with ``run_secs`` null, the source
task's name, tags and weights. Tasks are written in random order, so a measurement stopped early has
measured a random subset of the tasks, not the alphabetically first ones. Task directories keep the
source's names, so each measured program can be paired with its source record by directory and trace.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from ..atomic_io import write_json_atomic, write_text_atomic
from ..errors import UserError
from .layout import RECORD_FILE, TASK_FILE, WORKLOAD_FILE, database_lines, trace_key
from .reader import find_databases, latency_of
from .selection_files import SELECTION_FILE, SELECTION_FORMAT, SELECTION_VERSION, SelectionError

REMEASURE_METHOD = "remeasure-random"


def plan_remeasure(databases: list[str | os.PathLike], out_dir: str | os.PathLike, per_task: int, max_tasks: int,
                   seed: int = 0, exclude: set[str] | None = None) -> dict:
    """Write a selection of ``per_task`` measured programs from each of up to ``max_tasks`` tasks of
    ``databases`` to ``out_dir`` (new or empty); return its ``selection.json`` content.

    ``exclude``: database directory names to leave out (e.g. a protocol's final-test tasks, which no
    development experiment may look at). Raises ``UserError`` when no task has ``per_task`` valid
    programs or ``out_dir`` is not empty."""
    if per_task < 1 or max_tasks < 1:
        raise UserError(f"per_task and max_tasks must be >= 1, got {per_task} and {max_tasks}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise SelectionError(f"{out} exists and is not empty; a selection is written to a new or empty directory")
    exclude = exclude or set()
    eligible = []
    for d in find_databases(databases):
        if d.name in exclude:
            continue
        valid = _valid_lines(d)
        if len(valid) >= per_task:
            eligible.append((d, valid))
    if not eligible:
        raise UserError(f"no task under {', '.join(map(str, databases))} has {per_task} valid distinct programs")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(eligible))[:max_tasks]
    selection = {"format": SELECTION_FORMAT, "version": SELECTION_VERSION, "method": REMEASURE_METHOD,
                 "budget": 0, "seed": seed, "per_task": per_task, "max_tasks": max_tasks,
                 "sources": [str(p) for p in databases], "excluded": len(exclude),
                 "eligible_tasks": len(eligible), "device": {"name": None}, "target": None, "tasks": {},
                 "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.mkdir(parents=True, exist_ok=True)
    for i in order:
        src, valid = eligible[int(i)]
        picked = sorted(rng.choice(len(valid), size=per_task, replace=False))
        if src.name in selection["tasks"]:
            raise UserError(f"two source databases are both named {src.name}; pass one dataset root per name")
        work = out / src.name
        work.mkdir()
        write_text_atomic(work / WORKLOAD_FILE, (src / WORKLOAD_FILE).read_text())
        lines = []
        for j in picked:
            wl_index, rec = valid[j]
            selection["target"] = selection["target"] or rec[2]
            lines.append(json.dumps([wl_index, [rec[0], None, *rec[2:]]]))
        write_text_atomic(work / RECORD_FILE, "\n".join(lines) + "\n")
        state = json.loads((src / TASK_FILE).read_text()) if (src / TASK_FILE).exists() else {"name": src.name}
        selection["tasks"][src.name] = {
            "name": state.get("name", src.name), "tags": state.get("tags", []), "weights": state.get("weights", {}),
            "weight": state.get("weight", 1.0), "workload": state.get("workload"), "source": str(src),
            "candidates": len(valid), "selected": per_task}
        selection["budget"] += per_task
    selection["n_selected"] = selection["budget"]
    write_json_atomic(out / SELECTION_FILE, selection)
    return selection


def _valid_lines(directory: Path) -> list[tuple[int, list]]:
    """(workload index, record JSON) of the valid records of a database, one per distinct trace."""
    seen, valid = set(), []
    for wl_index, rec in database_lines(directory / RECORD_FILE):
        if rec[1] is None or latency_of(rec[1]) is None:
            continue
        key = trace_key(rec)
        if key not in seen:
            seen.add(key)
            valid.append((wl_index, rec))
    return valid
