"""A selection directory: the programs ``cdmpp-tvm select`` chose for measuring on a new device, in the
form ``cdmpp-tvm collect --from-selection`` measures.

* ``selection.json``: ``{"format": "cdmpp-tvm-selection", "version": 1, "method", "budget", "seed",
  "device": {"name", "descriptor", "spec"}, "target", "checkpoint", "per_task_candidates", "n_selected",
  "tasks": {dir: {"name", "tags", "weights", "weight", "workload", "candidates", "selected"}}, "created"}``
  (written last: a directory without it is not a selection);
* one standard MetaSchedule JSON database per task with selected programs, ``<dir>/database_{workload,
  tuning_record}.json``, whose records hold the programs' traces with ``run_secs`` null: *not measured*
  (``cdmpp_tvm.data.reader`` counts them as unmeasured, never as failures).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex

from ..atomic_io import write_json_atomic
from ..errors import UserError
from .layout import RECORD_FILE, WORKLOAD_FILE, task_dir_name

SELECTION_FILE = "selection.json"

SELECTION_FORMAT = "cdmpp-tvm-selection"

SELECTION_VERSION = 1


class SelectionError(UserError):
    """A selection directory that is missing, incomplete or not a selection."""


def write_selection(out: Path, tasks: list, per_task: list[list], picked: dict[int, list[int]], target,
                    selection: dict) -> None:
    """Write one database per task with picked programs (records not measured: run_secs null), then
    ``selection.json`` (last, atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    for t, task in enumerate(tasks):
        js = picked.get(t, [])
        entry = {"name": task.name, "tags": list(task.tags), "weights": dict(task.weights), "weight": task.weight,
                 "workload": shash2hex(task.mod), "candidates": len(per_task[t]), "selected": len(js)}
        selection["tasks"][task_dir_name(task)] = entry
        if not js:
            continue
        work = out / task_dir_name(task)
        work.mkdir(parents=True, exist_ok=True)
        db = ms.database.JSONDatabase(work_dir=str(work))
        wl = db.commit_workload(task.mod)
        for j in js:
            c = per_task[t][j]
            db.commit_tuning_record(ms.database.TuningRecord(trace=c.sch.trace, workload=wl, run_secs=None,
                                                             target=target, args_info=c.args_info))
    write_json_atomic(out / SELECTION_FILE, selection)


def read_selection(directory: str | os.PathLike) -> dict:
    """The ``selection.json`` of a selection directory, checked: raises ``SelectionError`` naming what is
    wrong (missing directory or file, not JSON, another format, a task database missing)."""
    d = Path(directory)
    if not d.is_dir():
        raise SelectionError(f"selection directory {d} does not exist (make one with cdmpp-tvm select)")
    path = d / SELECTION_FILE
    if not path.is_file():
        raise SelectionError(f"{d} is not a selection: no {SELECTION_FILE} (make one with cdmpp-tvm select; an "
                             "interrupted select leaves no selection.json)")
    try:
        sel = json.loads(path.read_text())
    except ValueError as e:
        raise SelectionError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(sel, dict) or sel.get("format") != SELECTION_FORMAT:
        raise SelectionError(f"{path}: not a cdmpp-tvm selection (format is not {SELECTION_FORMAT!r})")
    if sel.get("version") != SELECTION_VERSION:
        raise SelectionError(f"{path}: selection version {sel.get('version')}, this cdmpp-tvm reads {SELECTION_VERSION}")
    for key in ("method", "budget", "target", "tasks"):
        if key not in sel:
            raise SelectionError(f"{path}: missing {key!r}")
    for name, entry in sel["tasks"].items():
        if not isinstance(entry, dict) or "selected" not in entry or "name" not in entry:
            raise SelectionError(f"{path}: task {name!r} has no 'name'/'selected'")
        if entry["selected"] > 0:
            for f in (WORKLOAD_FILE, RECORD_FILE):
                if not (d / name / f).is_file():
                    raise SelectionError(f"{d / name}: {f} is missing; the selection is incomplete")
    return sel
