"""Census of the tuning tasks that networks contribute, and how many the existing dataset lacks.

For each network (at a batch size) this extracts the MetaSchedule tasks exactly as a collection does
(cdmpp_tvm.workloads.network_tasks: torch.export -> Relax -> legalize_and_fuse -> extract_tasks), and
compares each task's workload hash (meta_schedule.utils.shash2hex of the task module, the manifest's
"workload" field) with the tasks of an existing dataset. Nothing is tuned or measured; extraction is
single-process and takes seconds to about a minute per network.

    python benchmarks/zoo_task_census.py                          # every zoo network, batch size 1
    python benchmarks/zoo_task_census.py vgg11 resnet18:4         # chosen networks, NAME[:BATCH]
    python benchmarks/zoo_task_census.py --suite dataset-cpu-v2   # a suite's networks and batch sizes

Writes benchmarks/results/zoo_task_census.json (rewritten after every network, so an interrupted run
keeps what it finished; a new run starts over) and prints a table. Per entry: tasks (distinct within
the network), new_tasks (of those, not in the dataset), new_vs_earlier_entries (new tasks that no
earlier entry of this run had either), seconds (export + import + legalize/fuse + extraction), the
task hashes, or the error if the network failed. Totals count distinct hashes over all entries.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tvm
from tvm.s_tir.meta_schedule.utils import shash2hex

from cdmpp_tvm.atomic_io import write_json_atomic
from cdmpp_tvm.workloads import network_tag, network_tasks

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_MANIFEST = os.path.join(REPO, "data", "dataset-cpu", "manifest.json")
DEFAULT_OUT = os.path.join(REPO, "benchmarks", "results", "zoo_task_census.json")


def _entries(args) -> list[tuple[str, int]]:
    if args.suite:
        from cdmpp_tvm.workloads.suite import _parse, _resolve

        spec = _parse(_resolve(args.suite))
        return [(n["name"], b) for n in spec.get("networks", []) for b in n.get("batch_sizes", [1])]
    if args.networks:
        out = []
        for item in args.networks:
            name, _, batch = item.partition(":")
            out.append((name, int(batch) if batch else 1))
        return out
    from cdmpp_tvm.workloads.torch_zoo import ZOO_BUILDERS  # imports torch

    return [(name, 1) for name in ZOO_BUILDERS]


def _known_workloads(manifest_path: str) -> set[str]:
    if not manifest_path or not os.path.exists(manifest_path):
        return set()
    with open(manifest_path) as f:
        return {t["workload"] for t in json.load(f)["tasks"].values()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="*", help="NAME[:BATCH] (default: every zoo network at batch size 1)")
    parser.add_argument("--suite", help="take the networks and batch sizes of this suite (name or path)")
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST, help="existing dataset's manifest.json")
    parser.add_argument("--mcpu", default="znver4", help="llvm -mcpu of the target (the dataset's)")
    parser.add_argument("--cores", type=int, default=2, help="num-cores of the target")
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()

    target = tvm.target.Target({"kind": "llvm", "num-cores": args.cores, "mcpu": args.mcpu})
    known = _known_workloads(args.manifest)
    manifest = os.path.relpath(args.manifest, REPO) if args.manifest else None
    result = {"target": str(target), "manifest": manifest, "known_workloads": len(known), "entries": []}
    seen: set[str] = set()
    for name, batch_size in _entries(args):
        entry = {"network": name, "batch_size": batch_size, "tag": network_tag(name, batch_size)}
        t0 = time.perf_counter()
        try:
            hashes = sorted({shash2hex(task.mod) for task in network_tasks(name, target, batch_size)})
            fresh = [h for h in hashes if h not in known]
            entry.update(tasks=len(hashes), new_tasks=len(fresh), new_vs_earlier_entries=len(set(fresh) - seen),
                         hashes=hashes)
            seen.update(fresh)
        except Exception as err:  # noqa: BLE001 - a census records failures and goes on
            entry.update(error=f"{type(err).__name__}: {err}"[:2000], traceback=traceback.format_exc()[-4000:])
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        result["entries"].append(entry)
        _print_row(entry)
        result["totals"] = _totals(result["entries"], known)
        write_json_atomic(args.out, result)
    totals = result["totals"]
    print(f"\n{totals['entries']} entries ({totals['failed']} failed), {totals['distinct_tasks']} distinct tasks, "
          f"{totals['distinct_new_tasks']} not in the dataset ({len(known)} known), {totals['seconds']:.0f} s -> {args.out}")


def _totals(entries: list[dict], known: set[str]) -> dict:
    hashes = {h for e in entries for h in e.get("hashes", [])}
    return {"entries": len(entries), "failed": sum("error" in e for e in entries), "distinct_tasks": len(hashes),
            "distinct_new_tasks": len(hashes - known), "seconds": round(sum(e["seconds"] for e in entries), 1)}


def _print_row(e: dict) -> None:
    if "error" in e:
        print(f"{e['tag']:<34} FAILED after {e['seconds']:.1f} s: {e['error'][:200]}", flush=True)
    else:
        print(f"{e['tag']:<34} tasks {e['tasks']:>4}  new {e['new_tasks']:>4}  new-so-far {e['new_vs_earlier_entries']:>4}"
              f"  {e['seconds']:>6.1f} s", flush=True)


if __name__ == "__main__":
    main()
