"""Benchmark: the same programs on two devices, program by program.

Pairs the valid records of a *target* dataset (measured with ``cdmpp-tvm plan-remeasure`` +
``collect --from-selection``, so its task directories and traces are the source's) with the source
records of the same task directory and trace, and reports how much the devices differ: the target/source
latency ratio (median, spread), the correlation of log latencies over all pairs, the per-task Spearman
correlation of the two devices' latencies, and per task how good the source's fastest program is on the
target (top-1 transfer: best target latency / target latency of the source's best program; 1.0 = the
source's ranking picks the target's best). It is the ceiling of "predict the target with a perfect model
of the source": a cost model that knows only the source cannot rank the target better than this.

    python benchmarks/device_pairs.py --source data/dataset-cpu data/dataset-cpu-v2 \\
        --target data/dataset-cpu-znver5 [--out-dir benchmarks/results] [--name znver4-znver5]

Writes ``device_pairs-NAME.json`` (every task's numbers), ``device_pairs-NAME.md`` and
``device_pairs-NAME.png`` (target vs source latency, log-log; histogram of ratios).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.atomic_io import write_figure_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.data.layout import RECORD_FILE, database_lines, trace_key  # noqa: E402
from cdmpp_tvm.data.reader import find_databases, latency_of  # noqa: E402
from cdmpp_tvm.evaluation import format_number  # noqa: E402


def latencies_by_trace(directory: Path) -> tuple[dict[str, float], str | None]:
    """{trace key: latency in seconds} of a database's valid records (a program measured twice: the
    median of its latencies), and the mcpu of its target."""
    by_key: dict[str, list[float]] = {}
    mcpu = None
    for _, rec in database_lines(directory / RECORD_FILE):
        lat = latency_of(rec[1]) if rec[1] is not None else None
        if lat is None:
            continue
        by_key.setdefault(trace_key(rec), []).append(lat)
        mcpu = mcpu or (rec[2] or {}).get("mcpu")
    return {k: float(np.median(v)) for k, v in by_key.items()}, mcpu


def pair_tasks(source: list[str], target: list[str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """{task directory name: (source latencies, target latencies) of the programs both measured}, and
    the devices' mcpu values."""
    src_dirs = {d.name: d for d in find_databases(source)}
    pairs, mcpus = {}, {"source": set(), "target": set()}
    for d in find_databases(target):
        if d.name not in src_dirs:
            continue
        tgt, tm = latencies_by_trace(d)
        src, sm = latencies_by_trace(src_dirs[d.name])
        keys = sorted(set(tgt) & set(src))
        if keys:
            pairs[d.name] = (np.array([src[k] for k in keys]), np.array([tgt[k] for k in keys]))
            mcpus["source"].add(sm)
            mcpus["target"].add(tm)
    return pairs, {k: sorted(str(x) for x in v) for k, v in mcpus.items()}


def task_numbers(src: np.ndarray, tgt: np.ndarray) -> dict:
    ratio = tgt / src
    out = {"n": len(src), "median_ratio": float(np.median(ratio)), "spearman": None, "top1_transfer": None}
    if len(src) >= 3 and np.ptp(src) > 0 and np.ptp(tgt) > 0:
        out["spearman"] = float(spearmanr(src, tgt).statistic)
        out["top1_transfer"] = float(tgt.min() / tgt[np.argmin(src)])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", nargs="+", required=True, help="database directories of the source device")
    p.add_argument("--target", nargs="+", required=True, help="database directories of the target device")
    p.add_argument("--name", default="znver4-znver5", help="suffix of the output files")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    pairs, mcpus = pair_tasks(args.source, args.target)
    if not pairs:
        print("error: no program of the target datasets is in the source datasets (same task directory and "
              "trace); measure the target with plan-remeasure + collect --from-selection", file=sys.stderr)
        return 2
    per_task = {name: task_numbers(s, t) for name, (s, t) in sorted(pairs.items())}
    src = np.concatenate([s for s, _ in pairs.values()])
    tgt = np.concatenate([t for _, t in pairs.values()])
    ranked = [v for v in per_task.values() if v["spearman"] is not None]
    ratio = tgt / src
    overall = {"n_pairs": len(src), "n_tasks": len(pairs), "n_ranked_tasks": len(ranked),
               "median_ratio": float(np.median(ratio)),
               "ratio_p10_p90": [float(np.percentile(ratio, 10)), float(np.percentile(ratio, 90))],
               "pearson_log": float(np.corrcoef(np.log(src), np.log(tgt))[0, 1]),
               # None where no task has 3 programs with differing latencies on both devices
               "mean_task_spearman": float(np.mean([v["spearman"] for v in ranked])) if ranked else None,
               "mean_top1_transfer": float(np.mean([v["top1_transfer"] for v in ranked])) if ranked else None,
               "mape_if_source_latency_used": float(np.mean(np.abs(src - tgt) / tgt)),
               "mape_if_source_latency_times_median_ratio": float(np.mean(np.abs(src * np.median(ratio) - tgt) / tgt)),
               # Each task scaled by its own median ratio over all its pairs (in-sample, an oracle): the error
               # left to any predictor that knows the source exactly and the target only up to a per-task scale.
               "mape_if_source_latency_times_task_median_ratio": float(np.mean(np.concatenate(
                   [np.abs(s * np.median(t / s) - t) / t for s, t in pairs.values()])))}
    command = benchmark_command(__file__, argv)
    meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "mcpu": mcpus,
            "source": args.source, "target": args.target}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"device_pairs-{args.name}"
    write_text_atomic(stem.with_suffix(".json"),
                      json.dumps({"meta": meta, "overall": overall, "per_task": per_task}, indent=1) + "\n")
    write_text_atomic(stem.with_suffix(".md"), _markdown(meta, overall, per_task))
    _plot(src, tgt, ratio, stem.with_suffix(".png"), mcpus)
    print(json.dumps(overall, indent=1))
    print(f"wrote {stem}.json, .md and .png")
    return 0


def _markdown(meta: dict, o: dict, per_task: dict) -> str:
    src, tgt = "/".join(meta["mcpu"]["source"]), "/".join(meta["mcpu"]["target"])
    worst = sorted((v["top1_transfer"], k) for k, v in per_task.items() if v["top1_transfer"] is not None)[:8]
    lines = [f"# The same programs on two CPUs: {src} (source) vs {tgt} (target)", "",
             f"{o['n_pairs']} programs of {o['n_tasks']} tasks measured on both ({meta['date']}).", "",
             "| quantity | value |", "|---|---|",
             f"| median latency ratio target/source | {o['median_ratio']:.3f} |",
             f"| ratio 10th-90th percentile | {o['ratio_p10_p90'][0]:.3f} - {o['ratio_p10_p90'][1]:.3f} |",
             f"| Pearson correlation of log latencies | {o['pearson_log']:.3f} |",
             f"| mean per-task Spearman (source vs target latency) | {format_number(o['mean_task_spearman'])} |",
             f"| mean top-1 transfer (source's best program on the target) | {format_number(o['mean_top1_transfer'])} |",
             f"| MAPE of 'target = source latency' | {100 * o['mape_if_source_latency_used']:.1f}% |",
             f"| MAPE of 'target = source latency x median ratio' | "
             f"{100 * o['mape_if_source_latency_times_median_ratio']:.1f}% |",
             f"| MAPE of 'target = source latency x the task's own median ratio' (oracle) | "
             f"{100 * o['mape_if_source_latency_times_task_median_ratio']:.1f}% |", "",
             "Tasks where the source's best program is worst on the target (top-1 transfer, task):", ""]
    lines += [f"* {v:.3f} {k}" for v, k in worst]
    lines += ["", "Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(lines)


def _plot(src: np.ndarray, tgt: np.ndarray, ratio: np.ndarray, path: Path, mcpus: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    lo, hi = min(src.min(), tgt.min()) * 1e3 / 1.5, max(src.max(), tgt.max()) * 1e3 * 1.5
    axes[0].scatter(src * 1e3, tgt * 1e3, s=3, alpha=0.3)
    axes[0].plot([lo, hi], [lo, hi], color="gray", linewidth=1)
    axes[0].set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
                xlabel=f"source latency (ms, {'/'.join(mcpus['source'])})",
                ylabel=f"target latency (ms, {'/'.join(mcpus['target'])})")
    axes[1].hist(np.log2(ratio), bins=60)
    axes[1].set(xlabel="log2(target / source latency)", ylabel="programs")
    fig.tight_layout()
    write_figure_atomic(path, fig)


if __name__ == "__main__":
    sys.exit(main())
