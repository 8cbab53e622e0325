"""Benchmark report: two k-fold runs of ``benchmarks/kfold.py`` compared fold by fold (paired).

A recipe is kept only if the folds support it (issue 17): this pairs every fold that both runs have
scored (the same split file, checked by its digest), and gives for CDMPP of each run the per-fold metrics,
the difference NEW - BASE, its mean and sample standard deviation over the folds, and on how many folds
NEW is better (MAPE lower; Spearman, Kendall, top-1, top-5 higher; spread closer to 1). XGB and MLP of
BASE are shown as the reference the issue's targets name.

    python benchmarks/kfold_compare.py --base NAME --new NAME [--out-dir benchmarks/results]

Reads ``OUT/kfold-BASE/fold-*.json`` and ``OUT/kfold-NEW/fold-*.json``; writes
``OUT/kfold-compare-BASE-vs-NEW.{json,md}``. Exit code 2 with one line when a run has no fold, no fold
is shared, or a shared fold was scored on different split files.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.atomic_io import write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench.accuracy import METRIC_LABELS, METRICS, format_metric, improvement, read_fold_results  # noqa: E402
from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.errors import UserError  # noqa: E402

REFERENCES = ("XGB", "MLP")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", required=True, help="name of the k-fold run to compare against (kfold.py --name)")
    p.add_argument("--new", required=True, help="name of the k-fold run with the recipe tried")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    try:
        out = Path(args.out_dir)
        comparison = compare(read_fold_results(out, args.base), read_fold_results(out, args.new))
        comparison["meta"] = {"command": benchmark_command(__file__, argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                              "base": args.base, "new": args.new}
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stem = out / f"kfold-compare-{args.base}-vs-{args.new}"
    write_json_atomic(stem.with_suffix(".json"), comparison)
    write_text_atomic(stem.with_suffix(".md"), _markdown(comparison))
    print(f"wrote {stem}.json and .md")
    return 0



def compare(base: dict[str, dict], new: dict[str, dict]) -> dict:
    """Per-fold CDMPP metrics of both runs (fold results of kfold.py), their paired differences and a
    summary over the folds both have."""
    shared = sorted(set(base) & set(new))
    if not shared:
        raise UserError(f"no fold scored by both runs (base: {sorted(base)}; new: {sorted(new)})")
    for fold in shared:
        if base[fold]["split_digest"] != new[fold]["split_digest"]:
            raise UserError(f"{fold}: the runs were scored on different split files (digest "
                            f"{base[fold]['split_digest']} != {new[fold]['split_digest']})")
    rows = {}
    for fold in shared:
        b, n = base[fold]["models"]["CDMPP"]["overall"], new[fold]["models"]["CDMPP"]["overall"]
        rows[fold] = {"held_out": base[fold]["held_out"],
                      "base": {m: b.get(m) for m in METRICS}, "new": {m: n.get(m) for m in METRICS},
                      **{ref: {m: base[fold]["models"][ref]["overall"].get(m) for m in METRICS} for ref in REFERENCES}}
    summary = {}
    for m in METRICS:
        pairs = [(r["base"][m], r["new"][m]) for r in rows.values() if r["base"][m] is not None and r["new"][m] is not None]
        if not pairs:
            summary[m] = None
            continue
        diff = np.array([n - b for b, n in pairs])
        gain = np.array([improvement(m, b, n) for b, n in pairs])
        summary[m] = {"base_mean": float(np.mean([b for b, _ in pairs])), "new_mean": float(np.mean([n for _, n in pairs])),
                      "diff_mean": float(diff.mean()), "diff_std": float(diff.std(ddof=1)) if len(diff) > 1 else None,
                      "folds_better": int((gain > 0).sum()), "n_folds": len(pairs)}
    missing = {"base_only": sorted(set(base) - set(new)), "new_only": sorted(set(new) - set(base))}
    return {"folds": rows, "summary": summary, "unpaired_folds": missing}


def _markdown(c: dict) -> str:
    meta, summary = c["meta"], c["summary"]
    lines = [f"# k-fold, paired: `{meta['new']}` vs `{meta['base']}` (CDMPP)", "",
             f"{len(c['folds'])} fold(s) scored by both runs ({meta['date']}). Difference = new - base; better on a fold: "
             "MAPE lower, Spearman / Kendall / top-1 / top-5 higher, spread (std of ln prediction / std of ln "
             "latency within a task, median over tasks) closer to 1.", "",
             "| metric | base mean | new mean | new - base (mean ± std) | folds new better |", "|---|---|---|---|---|"]
    for m in METRICS:
        s = summary[m]
        if s is None:
            lines.append(f"| {METRIC_LABELS[m]} | n/a | n/a | n/a | n/a |")
            continue
        diff = format_metric(m, s["diff_mean"]) + ("" if s["diff_std"] is None else f" ± {format_metric(m, s['diff_std'])}")
        lines.append(f"| {METRIC_LABELS[m]} | {format_metric(m, s['base_mean'])} | {format_metric(m, s['new_mean'])} | {diff} | "
                     f"{s['folds_better']} of {s['n_folds']} |")
    lines += ["", "Per fold (XGB and MLP: trained on the same records, from the base run):", "",
              "| fold | model | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for fold, r in c["folds"].items():
        for i, (label, key) in enumerate((("CDMPP base", "base"), ("CDMPP new", "new"), *((ref, ref) for ref in REFERENCES))):
            lines.append(f"| {fold if i == 0 else ''} | {label} | " + " | ".join(format_metric(m, r[key][m]) for m in METRICS) + " |")
    unpaired = c["unpaired_folds"]
    if unpaired["base_only"] or unpaired["new_only"]:
        lines += ["", f"Not paired (scored by one run only): base {unpaired['base_only']}, new {unpaired['new_only']}."]
    lines += ["", "Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
