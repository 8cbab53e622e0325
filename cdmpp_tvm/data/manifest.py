"""A collection's ``manifest.json``: what was measured where and how (device, CPU model or GPU, target,
TVM version, settings), per-task counts, and one ``runs`` entry per ``collect`` run, kept up to date after
every task so that a killed run keeps its time window."""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict
from pathlib import Path

from tvm_patches.ffi_version import installed_tvm_versions

from ..atomic_io import write_json_atomic
from ..device import cpu_model_name, device_name
from .layout import MANIFEST
from .measure import CollectConfig, RPCSettings


def open_manifest(out: Path, target, cfg: CollectConfig, rpc: RPCSettings | None) -> tuple[Path, dict]:
    """The output directory's manifest (resumed if present), updated with this run's description."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest.update(describe_run(target, cfg, rpc))
    manifest.setdefault("tasks", {})
    manifest["totals"] = task_totals(manifest["tasks"])
    # One entry per run, kept up to date after every task, so that a run stopped with a kill still has
    # its time window and yield in the manifest (the data card's collection periods and records/hour).
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    manifest.setdefault("runs", []).append(
        {"start": now, "end": now, "start_unix": time.time(), "seconds": 0.0, "tasks": 0, "valid_records": 0,
         "valid_at_start": task_totals(manifest["tasks"])["valid"], "loadavg_at_start": list(os.getloadavg())})
    write_json_atomic(path, manifest)
    return path, manifest


def record_task(path: Path, manifest: dict, name: str, state: dict) -> None:
    """Put one finished task's facts (from its task.json state) in the manifest and write it."""
    manifest["tasks"][name] = {k: state[k] for k in ("name", "tags", "weights", "weight", "workload", "valid",
                                                     "build_failed", "run_failed", "records", "seconds", "status")} \
        | {"stopped_early": state.get("stopped_early", {}).get("reason")}
    manifest["totals"] = task_totals(manifest["tasks"])
    manifest["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    run = manifest["runs"][-1]
    run["end"], run["tasks"], run["seconds"] = manifest["updated"], run["tasks"] + 1, time.time() - run["start_unix"]
    # Valid records this run added to the manifest's total (a task interrupted by a kill counts, with
    # all its records, in the run that finishes it).
    run["valid_records"] = manifest["totals"]["valid"] - run["valid_at_start"]
    write_json_atomic(path, manifest)


def finish_run(path: Path, manifest: dict) -> dict:
    """Close this run's ``runs`` entry; ``last_run`` is its summary (what ``collect`` prints)."""
    run = manifest["runs"][-1]
    run.update(end=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.time() - run["start_unix"],
               loadavg_at_end=list(os.getloadavg()))
    manifest["last_run"] = {"tasks": run["tasks"], "seconds": run["seconds"], "valid_records": run["valid_records"],
                            "valid_records_per_hour": valid_per_hour(run), "loadavg_at_end": run["loadavg_at_end"]}
    write_json_atomic(path, manifest)
    return manifest


def valid_per_hour(run: dict) -> float | None:
    """Valid records per hour of a manifest ``runs`` entry; None for a run without measured time."""
    seconds = run.get("seconds") or 0.0
    return run.get("valid_records", 0) / seconds * 3600 if seconds > 0 else None


def task_totals(tasks: dict) -> dict:
    """Valid / build-failed / run-failed / all records and the task count of a manifest's tasks."""
    keys = ("valid", "build_failed", "run_failed", "records")
    return {k: sum(t.get(k, 0) for t in tasks.values()) for k in keys} | {"tasks": len(tasks)}


def describe_run(target, cfg: CollectConfig, rpc: RPCSettings | None) -> dict:
    versions = installed_tvm_versions()
    return {
        "device": device_name(target),
        "cpu_model": cpu_model_name() if rpc is None else "remote (see rpc)",
        "gpu_name": _gpu_name(target),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "target": target_json(target),
        "tvm_version": versions.get("apache-tvm"),
        "tvm_ffi_version": versions.get("apache-tvm-ffi"),
        "settings": asdict(cfg),
        "rpc": None if rpc is None else asdict(rpc),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_at_start": os.getloadavg(),
    }


def target_json(target) -> dict | str:
    """A target as its JSON dict (0.27 prints targets as JSON), for the manifest."""
    try:
        return json.loads(str(target))
    except ValueError:
        return str(target)


def _gpu_name(target) -> str | None:
    if target.kind.name != "cuda":
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None
