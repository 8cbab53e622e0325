"""Benchmark: leave-one-family-out k-fold accuracy of CDMPP vs XGB and MLP, and, once, the final test.

Reads the split files of a generalization protocol (``cdmpp-tvm split --dataset ROOT ... --protocol
configs/protocol/P.yaml --out DIR`` writes ``final-test.json`` and one ``fold-<family>.json`` per family).
For every fold: trains CDMPP with a training YAML whose data is replaced by the fold's training part
(early stopping on its own validation tasks, drawn from that training part), trains XGB and MLP on the same
records, and scores all three on the fold's held-out family (``cdmpp_tvm.bench.accuracy.score_split``).
The report gives each fold and the mean and sample standard deviation over folds.

The final test is never part of it: only ``--final-test`` trains on ``final-test.json``'s training part
and scores its test part, into a report of its own. Run it once, at the end, with the recipe the folds chose.

    python benchmarks/kfold.py --splits DIR --train-config YAML --name NAME [--folds F ...] [--final-test]
                               [--work-dir work_dirs/kfold] [--out-dir benchmarks/results] [--threads N]
                               [--mlp-time-limit S]

Resumable: a fold whose result file exists is not run again, a trained fold checkpoint is reused, and an
interrupted training resumes from its state file. Each result records the digest of its split file; a
changed split file (the dataset grew) stops the run with exit code 2: start a new ``--name``.

Writes ``OUT/kfold-NAME/<fold>.json`` (per fold, per task too), ``OUT/kfold-NAME.{json,md,png}`` (the
summary) or, with ``--final-test``, ``OUT/kfold-NAME/final-test.json`` and ``OUT/final-test-NAME.{json,md}``.
Checkpoints go to ``WORK/NAME/<fold>.pt`` (git-ignored).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.atomic_io import write_figure_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench.accuracy import (METRICS, MODELS, PREDICTION_RANGE_S, format_metric, read_fold_results,  # noqa: E402
                                      score_split)
from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.data.splits import read_split, split_digest  # noqa: E402
from cdmpp_tvm.errors import UserError  # noqa: E402
from cdmpp_tvm.evaluation import format_number  # noqa: E402
from cdmpp_tvm.model.checkpoint import load_checkpoint  # noqa: E402
from cdmpp_tvm.training.run import job_with_overrides, run_train_job  # noqa: E402

FINAL_TEST = "final-test"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--splits", required=True, help="directory of a protocol's split files (cdmpp-tvm split --protocol)")
    p.add_argument("--train-config", required=True, help="training YAML (its data keys are replaced by each fold's)")
    p.add_argument("--name", required=True, help="name of this k-fold run (result and checkpoint directories)")
    p.add_argument("--folds", nargs="+", default=None, help="fold names (default: every fold-*.json)")
    p.add_argument("--final-test", action="store_true", help="run the final test instead of the folds (once, at the end)")
    p.add_argument("--work-dir", default="work_dirs/kfold", help="where fold checkpoints go")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--threads", type=int, default=None, help="CPU threads for XGB and MLP (default: all)")
    p.add_argument("--mlp-time-limit", type=float, default=None, help="seconds of MLP training at most")
    args = p.parse_args(argv)
    try:
        return _run(args, benchmark_command(__file__, argv))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _run(args, command: str) -> int:
    splits_dir = Path(args.splits)
    fold_files = _fold_files(splits_dir, args.folds, args.final_test)
    run_dir = Path(args.out_dir) / f"kfold-{args.name}"
    ckpt_dir = Path(args.work_dir) / args.name
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    done = {}
    for split_file in fold_files:
        fold = split_file.stem
        done[fold] = _run_fold(fold, split_file, run_dir, ckpt_dir, args)
    meta = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "name": args.name,
            "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "splits": str(splits_dir), "train_config": args.train_config,
            "units": {"mape": "fraction", "rmse": "ms"}}
    stem = f"final-test-{args.name}" if args.final_test else f"kfold-{args.name}"
    if not args.final_test:  # every fold run so far, also those of earlier invocations
        done = read_fold_results(args.out_dir, args.name)
    summary = {"meta": meta, "folds": {fold: _fold_overview(r) for fold, r in done.items()},
               "summary": _summarize(done)}
    out = Path(args.out_dir)
    write_json_atomic(out / f"{stem}.json", summary)
    write_text_atomic(out / f"{stem}.md", _markdown(summary, args.final_test))
    if not args.final_test:
        _plot(summary, out / f"{stem}.png")
    print(f"wrote {out / stem}.json and .md" + ("" if args.final_test else " and .png"))
    return 0


def _fold_files(splits_dir: Path, folds: list[str] | None, final_test: bool) -> list[Path]:
    if final_test:
        if folds:
            raise UserError("--final-test runs the final test only; leave out --folds")
        names = [FINAL_TEST]
    else:
        names = folds or sorted(f.stem for f in splits_dir.glob("fold-*.json"))
        if not names:
            raise UserError(f"{splits_dir}: no fold-*.json split files (cdmpp-tvm split --protocol writes them)")
        if FINAL_TEST in names:
            raise UserError("the final test is not a fold: run it with --final-test, once, at the end")
    files = [splits_dir / f"{n}.json" for n in names]
    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: no such split file")
    return files


def _run_fold(fold: str, split_file: Path, run_dir: Path, ckpt_dir: Path, args) -> dict:
    result_file = run_dir / f"{fold}.json"
    digest = split_digest(split_file)
    if result_file.exists():
        result = json.loads(result_file.read_text())
        if result["split_digest"] != digest:
            raise UserError(f"{split_file}: changed since {result_file} was written (digest {digest} != "
                            f"{result['split_digest']}); start a new --name")
        print(f"{fold}: done earlier ({result_file})", flush=True)
        return result
    split = json.loads(split_file.read_text())
    ckpt = ckpt_dir / f"{fold}.pt"
    if not ckpt.exists():
        job = job_with_overrides(args.train_config, out=str(ckpt), state_path=str(ckpt_dir / f"{fold}.state.pt"))
        job = dataclasses.replace(job, databases=[], split=str(split_file), split_root=None,
                                  target_domain_databases=[])
        print(f"{fold}: training CDMPP on {split['n_train_tasks']} tasks -> {ckpt}", flush=True)
        run_train_job(job, args.train_config)
    checkpoint = load_checkpoint(ckpt)
    train_dirs, test_dirs = read_split(split_file)
    print(f"{fold}: scoring on {split['n_test_tasks']} held-out tasks", flush=True)
    scores = score_split(train_dirs, test_dirs, checkpoint, args.threads, args.mlp_time_limit)
    history = checkpoint.info.get("history", {})
    best = history.get("best_epoch", -1)
    result = {"fold": fold, "split": str(split_file), "split_digest": digest,
              "held_out": split.get("held_out", []), "family": split.get("family"), **scores.counts,
              "left_out": scores.left_out, "checkpoint": str(ckpt),
              "cdmpp_best_epoch": best, "cdmpp_val_loss": history["val_loss"][best] if history.get("val_loss") else None,
              "date": time.strftime("%Y-%m-%d %H:%M:%S"),
              "models": {name: {"train_seconds": scores.train_seconds[name],
                                "n_out_of_range": scores.n_out_of_range[name], **scores.results[name]}
                         for name in MODELS}}
    write_json_atomic(result_file, result)
    print(f"{fold}: " + "; ".join(f"{name} MAPE {100 * r['overall']['mape']:.1f}% top-1 {format_number(r['overall']['top1'])}"
                                 for name, r in result["models"].items()), flush=True)
    return result


def _fold_overview(result: dict) -> dict:
    keys = ("held_out", "n_train_records", "n_train_tasks", "n_test_records", "n_test_tasks", "n_test_groups",
            "cdmpp_best_epoch", "date")
    return {**{k: result.get(k) for k in keys},
            "models": {name: {**r["overall"], "train_seconds": r["train_seconds"],
                              "n_out_of_range": r.get("n_out_of_range", 0)}
                       for name, r in result["models"].items()}}


def _summarize(results: dict) -> dict:
    """{model: {metric: {"mean", "std", "min", "max", "n_folds"}}} over the folds; std is the sample
    standard deviation (ddof 1; None for one fold). Folds where a metric is None are skipped for it."""
    out = {}
    for name in MODELS:
        out[name] = {}
        for metric in METRICS:
            values = np.array([r["models"][name]["overall"].get(metric) for r in results.values()
                               if r["models"][name]["overall"].get(metric) is not None], dtype=float)
            out[name][metric] = None if len(values) == 0 else {
                "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "min": float(values.min()), "max": float(values.max()), "n_folds": len(values)}
    return out


def _stat(s: dict | None, metric: str) -> str:
    if s is None:
        return "n/a"
    return format_metric(metric, s["mean"]) + ("" if s["std"] is None else f" ± {format_metric(metric, s['std'])}")


def _markdown(summary: dict, final_test: bool) -> str:
    meta, folds = summary["meta"], summary["folds"]
    title = (f"# Final test of `{meta['train_config']}` ({meta['name']})" if final_test else
             f"# Leave-one-family-out k-fold accuracy: `{meta['train_config']}` ({meta['name']})")
    lines = [title, "",
             (f"{len(folds)} fold(s) from `{meta['splits']}`. {meta['date']}, {meta['cpus']} CPUs ({meta['machine']}). "
              "MAPE over records; Spearman, Kendall, top-1, top-5 means over the test tasks with 2 or more "
              "distinct programs, a task measured on two devices counting once per device (definitions: "
              "`cdmpp_tvm/evaluation.py`). CDMPP is trained per fold with the training YAML (early stopping "
              "on validation tasks of the fold's training part); XGB and MLP on the same records, without "
              "device input."), ""]
    if not final_test:
        lines += ["Mean ± sample standard deviation over folds:", "",
                  "| model | MAPE | Spearman | Kendall | top-1 | top-5 | spread |", "|---|---|---|---|---|---|---|"]
        for name in MODELS:
            s = summary["summary"][name]
            lines.append(f"| {name} | " + " | ".join(_stat(s[m], m) for m in METRICS) + " |")
        lines += ["", "Per fold:", ""]
    lines += ["| fold | held out | train tasks / records | test tasks / records | model | MAPE | Spearman | "
              "Kendall | top-1 | top-5 | spread | train s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for fold, f in folds.items():
        for i, name in enumerate(MODELS):
            o = f["models"][name]
            head = (f"| {fold} | {', '.join(f['held_out'])} | {f['n_train_tasks']} / {f['n_train_records']} | "
                    f"{f['n_test_tasks']} / {f['n_test_records']} |") if i == 0 else "| | | | |"
            secs = o["train_seconds"]
            lines.append(f"{head} {name} | " + " | ".join(format_metric(m, o.get(m)) for m in METRICS) +
                         f" | {'n/a' if secs is None else f'{secs:.0f}'} |")
    clipped = [f"{name} {f['models'][name]['n_out_of_range']} in {fold}" for fold, f in folds.items() for name in MODELS
               if f["models"][name].get("n_out_of_range")]
    if clipped:
        lines += ["", f"Predictions outside {PREDICTION_RANGE_S[0]:g} .. {PREDICTION_RANGE_S[1]:g} s (not finite latencies or "
                      "absurd), clipped into that range before scoring: " + "; ".join(clipped) + "."]
    lines += ["", "Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(lines)


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("mape", "spearman", "top1", "top5")
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 3.6), squeeze=False)
    folds = summary["folds"]
    for ax, metric in zip(axes[0], shown):
        for x, name in enumerate(MODELS):
            values = [f["models"][name][metric] for f in folds.values() if f["models"][name][metric] is not None]
            ax.scatter([x] * len(values), values, s=14, alpha=0.6)
            if values:
                ax.hlines(np.mean(values), x - 0.3, x + 0.3, color="black", linewidth=1.5)
        ax.set(xticks=range(len(MODELS)), xticklabels=MODELS, title=f"{metric} ({len(folds)} folds; bar = mean)")
        if metric == "mape":
            ax.set_yscale("log")
    fig.tight_layout()
    write_figure_atomic(path, fig)


if __name__ == "__main__":
    sys.exit(main())
