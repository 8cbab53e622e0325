"""Benchmark: prediction accuracy of CDMPP vs the XGB and MLP baselines on a train/test split.

The CDMPP checkpoint is trained elsewhere on the split's train part (``cdmpp-tvm train``); here the
two baselines are trained on the same train part (on MetaSchedule's PerStoreFeature rows, timed), and
all three predict the test part. Every model is scored on the same test records (those both feature
kinds could featurize) with ``cdmpp_tvm.evaluation.compute_metrics`` (MAPE as a fraction, RMSE in ms,
per-task Spearman / Kendall / top-k averaged over tasks).

    python benchmarks/accuracy.py --dataset ROOT --split SPLIT.json --cdmpp-checkpoint PATH
                                  [--out-dir benchmarks/results] [--threads N] [--mlp-time-limit S]

Writes ``accuracy.json`` (all metrics, per task too), ``accuracy.md`` (table and the exact command) and
``accuracy.png`` (predicted vs measured latency, log-log, one panel per model) to ``--out-dir``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.atomic_io import write_figure_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench.accuracy import MODELS, score_split  # noqa: E402
from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.data.splits import read_split  # noqa: E402
from cdmpp_tvm.errors import UserError  # noqa: E402
from cdmpp_tvm.evaluation import format_metrics_table, format_number  # noqa: E402
from cdmpp_tvm.model.checkpoint import load_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="root of the collected databases (the split's directories "
                                                    "are relative to it)")
    p.add_argument("--split", required=True, help="split JSON file (cdmpp-tvm split)")
    p.add_argument("--cdmpp-checkpoint", required=True, help="CDMPP checkpoint trained on the split's train part")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for XGB and MLP (default: all)")
    p.add_argument("--mlp-time-limit", type=float, default=None, help="seconds of MLP training at most")
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_dirs, test_dirs = read_split(args.split, args.dataset)
    checkpoint = load_checkpoint(args.cdmpp_checkpoint)
    try:
        scores = score_split(train_dirs, test_dirs, checkpoint, args.threads, args.mlp_time_limit)
    except UserError as e:
        print(f"error: {args.split}: {e}", file=sys.stderr)
        return 2
    if scores.left_out:
        print(f"note: {scores.left_out} test record(s) featurized by only one feature kind are left out", flush=True)
    results, train_seconds = scores.results, scores.train_seconds
    for name in MODELS:
        print(format_metrics_table(results[name], title=f"== {name}"), "\n", flush=True)
    command = benchmark_command(__file__, argv)
    meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.processor() or
            platform.machine(), "cpus": os.cpu_count(), "dataset": args.dataset, "split": args.split,
            "cdmpp_checkpoint": checkpoint.path, **scores.counts, "units": {"mape": "fraction", "rmse": "ms"}}
    payload = {"meta": meta, "models": {name: {"train_seconds": train_seconds[name],
                                               "n_out_of_range": scores.n_out_of_range[name], **results[name]}
                                        for name in MODELS}}
    write_text_atomic(out_dir / "accuracy.json", json.dumps(payload, indent=1) + "\n")
    write_text_atomic(out_dir / "accuracy.md", _markdown(meta, results, train_seconds))
    _plot(scores.predictions, scores.true_s, results, out_dir / "accuracy.png")
    print(f"wrote {out_dir / 'accuracy.json'}, {out_dir / 'accuracy.md'} and {out_dir / 'accuracy.png'}")
    return 0


def _markdown(meta: dict, results: dict, train_seconds: dict) -> str:
    lines = [f"# Prediction accuracy on the test part of `{meta['split']}`", "",
             (f"{meta['n_test_records']} test records of {meta['n_test_tasks']} tasks; baselines trained on "
              f"{meta['n_train_records']} records of {meta['n_train_tasks']} tasks. {meta['date']}, "
              f"{meta['cpus']} CPUs ({meta['machine']})."), "",
             ("MAPE over records (as a percentage); RMSE over records in milliseconds; Spearman, Kendall, "
              "top-1 and top-5 are per-task values averaged over the tasks that have 2 or more distinct programs, "
              "a task measured on two devices counting once per device "
              f"({next(iter(results.values()))['overall']['n_ranked_tasks']} of {meta['n_test_groups']}; a task "
              "whose design space is one program has nothing to rank) (top-k = best latency of the task / "
              "best latency among the k programs predicted fastest). CDMPP's training seconds are those "
              "recorded in its checkpoint (trained elsewhere)."), "",
             "| model | MAPE | RMSE (ms) | Spearman | Kendall | top-1 | top-5 | training seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        o = r["overall"]
        secs = train_seconds[name]
        lines.append(f"| {name} | {100 * o['mape']:.1f}% | {o['rmse']:.4g} | {format_number(o['spearman'])} | "
                     f"{format_number(o['kendall'])} | {format_number(o['top1'])} | {format_number(o['top5'])} | "
                     f"{'n/a' if secs is None else f'{secs:.1f}'} |")
    lines += ["", "Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(lines)


def _plot(predictions: dict, true_s: np.ndarray, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(predictions), figsize=(4.2 * len(predictions), 4.2), squeeze=False)
    lo = min(true_s.min(), *(p.min() for p in predictions.values())) * 1e3 / 1.5
    hi = max(true_s.max(), *(p.max() for p in predictions.values())) * 1e3 * 1.5
    for ax, (name, pred) in zip(axes[0], predictions.items()):
        o = results[name]["overall"]
        ax.scatter(true_s * 1e3, pred * 1e3, s=4, alpha=0.4)
        ax.plot([lo, hi], [lo, hi], color="gray", linewidth=1)
        ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi), xlabel="measured latency (ms)",
               ylabel="predicted latency (ms)",
               title=f"{name}: MAPE {100 * o['mape']:.0f}%, Spearman {format_number(o['spearman'])}")
    fig.tight_layout()
    write_figure_atomic(path, fig)


if __name__ == "__main__":
    sys.exit(main())
