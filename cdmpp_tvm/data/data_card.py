"""The numbers of a data card, from a collection's ``manifest.json``: ``cdmpp-tvm data-card DIR``.

``data/README.md`` quotes these tables; generating them from the manifest keeps the card and the data in
step. Per source (a network tag; a task whose only tag is its own name, such as a ``te_workload``
operator, counts under "operators"): tasks, valid records, build and run failures, early stops. A task
shared by several networks counts once in each network's row and once in the total. Per run (the
manifest's ``runs``): time window, tasks finished, valid records gained and records per hour.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

from ..errors import UserError
from .layout import MANIFEST, RECORD_FILE, database_lines
from .manifest import task_totals, valid_per_hour
from .reader import find_databases, latency_of, workload_hashes

OPERATORS = "operators"
_COUNTS = ("valid", "build_failed", "run_failed")


def load_manifest(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / MANIFEST
    if not path.exists():
        raise UserError(f"{path}: no collection manifest (is {dataset_dir} a `cdmpp-tvm collect` --out "
                                "directory?)")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(manifest.get("tasks"), dict):
        raise UserError(f"{path}: no 'tasks' object; not a collection manifest")
    return manifest


def sources_of(task: dict) -> list[str]:
    """The rows a task counts in: its network tags, or ``OPERATORS`` for a standalone workload."""
    tags = [t for t in task.get("tags", []) if t != task.get("name")]
    return tags or [OPERATORS]


def summarize(manifest: dict) -> dict:
    """-> {"sources": {source: counts}, "total": counts, "stopped_early": {reason: n}, "skipped": {reason: n},
    "runs": [...]}. counts = {"tasks", "valid", "build_failed", "run_failed"}; skipped: the last run's
    tasks left out unmeasured (``collect --skip-measured / --skip-single-program``)."""
    per: dict[str, Counter] = defaultdict(Counter)
    stopped: Counter = Counter()
    for task in manifest["tasks"].values():
        for src in sources_of(task):
            per[src]["tasks"] += 1
            for k in _COUNTS:
                per[src][k] += int(task.get(k, 0))
        if task.get("stopped_early"):
            stopped[task["stopped_early"]] += 1
    total = {k: v for k, v in task_totals(manifest["tasks"]).items() if k != "records"}
    runs = [{"start": r.get("start"), "end": r.get("end"), "hours": r.get("seconds", 0.0) / 3600,
             "tasks": r.get("tasks", 0), "valid": r.get("valid_records", 0),
             "valid_per_hour": valid_per_hour(r),
             "note": r.get("note")}
            for r in manifest.get("runs", [])]
    skipped = Counter(v.get("reason") for v in manifest.get("skipped", {}).values())
    return {"sources": {k: dict(per[k]) for k in sorted(per)}, "total": total, "stopped_early": dict(stopped),
            "skipped": dict(skipped), "runs": runs}


def data_card_markdown(manifest: dict) -> str:
    s = summarize(manifest)
    lines = [f"Device `{manifest.get('device')}` ({manifest.get('cpu_model') or manifest.get('gpu_name')}), target "
             f"`{json.dumps(manifest.get('target'))}`, apache-tvm {manifest.get('tvm_version')}, apache-tvm-ffi "
             f"{manifest.get('tvm_ffi_version')}.", "",
             "| source (network tag) | tasks | valid | build failed | run failed |", "|---|---|---|---|---|"]
    for src, c in s["sources"].items():
        lines.append(f"| {src} | {c.get('tasks', 0)} | {c.get('valid', 0):,} | {c.get('build_failed', 0)} | "
                     f"{c.get('run_failed', 0)} |")
    t = s["total"]
    lines.append(f"| **all (unique tasks)** | **{t['tasks']}** | **{t['valid']:,}** | **{t['build_failed']}** | "
                 f"**{t['run_failed']}** |")
    if s["stopped_early"]:
        lines += ["", "Stopped early: " + ", ".join(f"{n} task(s) {r}" for r, n in sorted(s["stopped_early"].items()))
                  + "."]
    if s["skipped"]:
        lines += ["", "Skipped, not measured (last run): " + ", ".join(f"{n} task(s) {r}" for r, n in
                                                                     sorted(s["skipped"].items())) + "."]
    if s["runs"]:
        lines += ["", "| run | start | end | hours | tasks finished | valid records | valid/hour |",
                  "|---|---|---|---|---|---|---|"]
        for i, r in enumerate(s["runs"], 1):
            rate = "n/a" if r["valid_per_hour"] is None else f"{r['valid_per_hour']:,.0f}"
            note = f" ({r['note']})" if r.get("note") else ""
            lines.append(f"| {i}{note} | {r['start']} | {r['end']} | {r['hours']:.2f} | {r['tasks']} | "
                         f"{r['valid']:,} | {rate} |")
        hours = sum(r["hours"] for r in s["runs"])
        valid = sum(r["valid"] for r in s["runs"])
        if hours > 0:
            lines.append(f"| **all** | | | **{hours:.2f}** | | **{valid:,}** | **{valid / hours:,.0f}** |")
    settings = manifest.get("settings", {})
    if settings:
        lines += ["", "Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()) + "."]
    return "\n".join(lines) + "\n"


def dataset_totals(roots: list[str | Path]) -> dict:
    """-> {"roots": {root: {"devices", "tasks", "valid"}}, "devices": {device: {"tasks", "valid"}},
    "total": {"tasks", "valid", "devices"}}: valid records (a measured latency) per root and per device
    (the record's target ``mcpu``, else its ``kind``), tasks as distinct workload structural hashes."""
    per_root, per_device = {}, defaultdict(lambda: {"hashes": set(), "valid": 0})
    all_hashes: set[str] = set()
    for root in roots:
        entry = {"devices": set(), "hashes": set(), "valid": 0}
        for d in find_databases([root]):
            hashes = workload_hashes(d)
            entry["hashes"] |= hashes
            valid = Counter()  # device -> valid records of this database
            for _, rec in database_lines(d / RECORD_FILE):
                if latency_of(rec[1]) is not None:
                    target = rec[2] if isinstance(rec[2], dict) else {}
                    valid[str(target.get("mcpu") or target.get("kind") or "unknown")] += 1
            for device, n in valid.items():
                entry["devices"].add(device)
                entry["valid"] += n
                per_device[device]["valid"] += n
                per_device[device]["hashes"] |= hashes
        all_hashes |= entry["hashes"]
        per_root[str(root)] = {"devices": sorted(entry["devices"]), "tasks": len(entry["hashes"]),
                               "valid": entry["valid"]}
    devices = {k: {"tasks": len(v["hashes"]), "valid": v["valid"]} for k, v in sorted(per_device.items())}
    return {"roots": per_root, "devices": devices,
            "total": {"tasks": len(all_hashes), "valid": sum(r["valid"] for r in per_root.values()),
                      "devices": len(devices)}}


def totals_markdown(totals: dict) -> str:
    lines = ["| root | devices (mcpu) | tasks | valid records |", "|---|---|---|---|"]
    for root, r in totals["roots"].items():
        lines.append(f"| {root} | {', '.join(r['devices'])} | {r['tasks']} | {r['valid']:,} |")
    t = totals["total"]
    lines += [f"| **all (distinct tasks)** | **{t['devices']} devices** | **{t['tasks']}** | **{t['valid']:,}** |",
              "", "| device (mcpu) | tasks | valid records |", "|---|---|---|"]
    lines += [f"| {name} | {d['tasks']} | {d['valid']:,} |" for name, d in totals["devices"].items()]
    return "\n".join(lines) + "\n"
