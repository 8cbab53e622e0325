"""``cdmpp-tvm collect --from-selection``: measure exactly the programs a selection chose
(``cdmpp-tvm select``), into databases, task files and a manifest like ``collect``'s."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import tvm
from tqdm import tqdm
from tvm.s_tir import meta_schedule as ms

from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics

from ..atomic_io import write_json_atomic
from ..errors import UserError
from .database_files import repair_torn_database
from .layout import RECORD_FILE, TASK_FILE, WORKLOAD_FILE, count_lines, database_lines, trace_key
from .manifest import finish_run, open_manifest, record_task
from .measure import (CollectConfig, RPCSettings, collect_builder, collect_runner, measure_candidates,
                      reap_workers_on_sigterm)
from .selection_files import read_selection


def collect_from_selection(selection_dir: str | os.PathLike, target: tvm.target.Target, out_dir: str | os.PathLike,
                           cfg: CollectConfig, rpc: RPCSettings | None = None, progress: bool = True) -> dict:
    """Measure exactly the programs of a selection (``cdmpp-tvm select``) on ``target`` and return the
    manifest.

    Writes, like ``collect``, one standard MetaSchedule JSON database per task (the selected programs
    with their measured ``run_secs``, ``[1e10]`` for a build or run error) + ``task.json`` (phase
    ``selection``) + ``manifest.json`` (with a ``selection`` entry). Programs are built with the
    project's builder and run with the collect runner in batches of ``cfg.trials_per_iter``; each batch
    is committed as it completes. Resumable: a program whose trace is already in the output database is
    not measured again. Raises ``SelectionError`` (a ValueError) for a missing or invalid selection,
    before anything is built."""
    sel_dir = Path(selection_dir)
    selection = read_selection(sel_dir)
    out = Path(out_dir)
    if out.resolve() == sel_dir.resolve():
        raise UserError(f"--out {out} is the selection directory; measure into another directory")
    # Read every selected program first, so a broken selection fails before any build.
    plan: list[tuple[str, dict, ms.database.Workload, list[list]]] = []
    for name, entry in selection["tasks"].items():
        if entry["selected"] == 0:
            continue
        lines = database_lines(sel_dir / name / RECORD_FILE)
        wl_lines = [ln for ln in (sel_dir / name / WORKLOAD_FILE).read_text().splitlines() if ln.strip()]
        if not wl_lines or not lines:
            raise UserError(f"{sel_dir / name}: no workload or no selected programs; the selection is incomplete")
        workload = ms.database.Workload.from_json(json.loads(wl_lines[0]))
        plan.append((name, entry, workload, [rec for _, rec in lines]))
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    manifest_path, manifest = open_manifest(out, target, cfg, rpc)
    manifest["selection"] = {"dir": str(sel_dir), "method": selection["method"], "budget": selection["budget"],
                             "device": selection.get("device", {}).get("name"),
                             "checkpoint": selection.get("checkpoint"), "selected_target": selection["target"]}
    builder, runner = collect_builder(cfg), collect_runner(cfg, rpc)
    total = sum(len(recs) for _, _, _, recs in plan)
    with reap_workers_on_sigterm("collect --from-selection"), \
            tqdm(total=total, desc="measured", unit="program", disable=not progress) as bar:
        for name, entry, workload, records in plan:
            state = _measure_selected_task(name, entry, workload, records, target, out, cfg, builder, runner, bar)
            record_task(manifest_path, manifest, name, state)
    return finish_run(manifest_path, manifest)


def _measure_selected_task(name: str, entry: dict, workload, records: list[list], target, out: Path,
                           cfg: CollectConfig, builder, runner, bar) -> dict:
    """Measure the not yet measured programs of one selected task; -> its task.json state."""
    work = out / name
    work.mkdir(exist_ok=True)
    task_path = work / TASK_FILE
    state = json.loads(task_path.read_text()) if task_path.exists() else {
        "name": entry["name"], "tags": list(entry.get("tags", [])), "weights": entry.get("weights", {}),
        "weight": entry.get("weight", 1.0), "workload": entry.get("workload"), "phases": {}, "valid": 0,
        "build_failed": 0, "run_failed": 0, "seconds": 0.0}
    done = {trace_key(rec) for _, rec in database_lines(work / RECORD_FILE)}
    todo = [rec for rec in records if trace_key(rec) not in done]
    bar.update(len(records) - len(todo))
    state["phases"]["selection"] = {"selected": len(records), "done": False}
    state["status"] = "running"
    write_json_atomic(task_path, state)
    repair_torn_database(work)
    database = ms.database.JSONDatabase(work_dir=str(work))
    wl = database.commit_workload(workload.mod)
    t0 = time.time()
    for b in range(0, len(todo), cfg.trials_per_iter):
        batch = [ms.database.TuningRecord.from_json(rec, workload) for rec in todo[b:b + cfg.trials_per_iter]]
        cands = [r.as_measure_candidate() for r in batch]
        results = measure_candidates(cands, target, builder, runner)
        for rec, cand, (run_secs, kind) in zip(batch, cands, results):
            database.commit_tuning_record(ms.database.TuningRecord(
                trace=rec.trace, workload=wl, run_secs=run_secs, target=target, args_info=cand.args_info))
            state[kind] += 1
        bar.update(len(batch))
        state["seconds"] += time.time() - t0
        t0 = time.time()
        write_json_atomic(task_path, state)
    state["records"] = count_lines(work / RECORD_FILE)
    state["phases"]["selection"]["done"] = True
    state["status"] = "done"
    write_json_atomic(task_path, state)
    return state
