"""Benchmark: CDMPPCostModel adapting online to a device its checkpoint was not trained on.

Tunes one workload on this machine with ``CDMPPCostModel(checkpoint=C)`` where C was trained on another
device, and records, for every measured batch *before* the model learns from it
(``stats()["fresh_batch_errors"]``):

* ``mape``: error of ``predict_latency`` (what the cost model believes: the model the guard trusts,
  times its per-task calibration), i.e. after everything learnt from the earlier batches;
* ``pretrained_mape``: error of the checkpoint as loaded (no calibration, no online training): the
  no-adaptation reference on the same programs;
* ``pairwise_accuracy``: share of program pairs of the batch that ``predict_latency`` orders correctly.

    python benchmarks/online_adaptation.py --checkpoint work_dirs/checkpoints/znver1-only.pt \\
        --workload conv2d --trials 192 --trials-per-iter 16 --out-dir benchmarks/results

Writes ``online_adaptation.json``, ``online_adaptation.md`` and ``online_adaptation.png`` to --out-dir. The
MetaSchedule database goes to ``--work-dir`` (default: a fresh ``work_dirs/online-adaptation-<time>``).
Measures: run it alone on the machine.
"""
from __future__ import annotations

import argparse
import logging
import platform
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm import CDMPPCostModel  # noqa: E402
from cdmpp_tvm.atomic_io import write_figure_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.tuning import tune  # noqa: E402
from cdmpp_tvm.workloads import load_workload  # noqa: E402
from tvm_patches.host_target import resolve_target  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint trained on another device (path or bundled name)")
    p.add_argument("--workload", default="conv2d", help="built-in operator/network name or TVMScript file")
    p.add_argument("--trials", type=int, default=192)
    p.add_argument("--trials-per-iter", type=int, default=16, help="measured batch size: one error point per batch")
    p.add_argument("--target", default="host")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None)
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")

    target = resolve_target(args.target)
    tasks = load_workload(args.workload, target)
    work_dir = args.work_dir or f"work_dirs/online-adaptation-{time.strftime('%Y%m%d-%H%M%S')}"
    model = CDMPPCostModel(checkpoint=args.checkpoint, seed=args.seed)
    t0 = time.perf_counter()
    result = tune(tasks, target, args.trials, work_dir, model, trials_per_iter=args.trials_per_iter,
                  task_scheduler="round-robin", seed=args.seed)
    stats = model.stats()
    if not stats["new_device"]:
        logging.warning("the checkpoint was trained on this device (%s): this is not a new-device run", target)
    points = stats["fresh_batch_errors"]
    if not points:
        raise SystemExit("no measured batch had a valid latency: nothing to report")
    report = {"command": "python " + " ".join(shlex.quote(a) for a in sys.argv), "machine": platform.node(),
              "target": str(target), "checkpoint": stats["checkpoint"], "new_device": stats["new_device"],
              "workload": args.workload, "tasks": [t.name for t in tasks], "trials": args.trials,
              "trials_per_iter": args.trials_per_iter, "wall_s": time.perf_counter() - t0,
              "best_latency_s": result.weighted_latency_s, "guard_uses_anchor": stats["guard_uses_anchor"],
              "online_steps": stats["online_steps"], "fallbacks": stats["fallbacks"], "batches": points}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "online_adaptation.json", report)
    write_text_atomic(out / "online_adaptation.md", _markdown(report))
    _plot(points, out / "online_adaptation.png", report)
    print(_markdown(report))
    return 0


def _markdown(report: dict) -> str:
    lines = ["# Online adaptation to a new device", "",
             f"`{report['command']}`", "",
             f"Checkpoint `{report['checkpoint']}` (new device: {report['new_device']}) tuning `{report['workload']}` "
             f"on `{report['target']}`: {report['trials']} trials in batches of {report['trials_per_iter']}, "
             f"{report['wall_s']:.0f} s, {report['online_steps']} online steps, {report['fallbacks']} fallbacks. "
             "Each row is a measured batch scored *before* the model learnt from it.", "",
             "| records learnt before | valid in batch | MAPE (cost model) | MAPE (checkpoint as loaded) | pairwise accuracy |",
             "|---|---|---|---|---|"]
    for b in report["batches"]:
        acc = "n/a" if b["pairwise_accuracy"] is None else f"{b['pairwise_accuracy']:.3f}"
        lines.append(f"| {b['records_before']} | {b['n']} | {b['mape']:.1%} | {b['pretrained_mape']:.1%} | {acc} |")
    return "\n".join(lines) + "\n"


def _plot(points: list[dict], path: Path, report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [b["records_before"] for b in points]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(x, [100 * b["mape"] for b in points], "o-", label="cost model (online + calibration)")
    a1.plot(x, [100 * b["pretrained_mape"] for b in points], "s--", label="checkpoint as loaded")
    a1.set_yscale("log")
    a1.set_xlabel("measured records learnt from")
    a1.set_ylabel("MAPE on the next batch (%)")
    a1.legend()
    a2.plot(x, [b["pairwise_accuracy"] if b["pairwise_accuracy"] is not None else float("nan") for b in points], "o-")
    a2.set_xlabel("measured records learnt from")
    a2.set_ylabel("pairwise ranking accuracy on the next batch")
    a2.set_ylim(0, 1)
    fig.suptitle(f"{report['workload']} on {report['target'][:60]}", fontsize=9)
    fig.tight_layout()
    write_figure_atomic(path, fig, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
