"""Benchmark: a k-fold run's CDMPP blended with the XGB baseline trained on the same records, fold by fold.

Does a tree model on MetaSchedule's per-store features know something the transformer does not? On
programs of networks it never saw, the transformer ranks some programs badly that XGB ranks well (a BERT
dense layer: a 42x slower program without vectorization, strided, predicted among the fastest; stop 28).
This scores, for each blend weight w, the prediction exp((1 - w) ln p_CDMPP + w ln p_XGB) on every fold
that ``benchmarks/kfold.py --name NAME`` has scored, with that fold's checkpoint and a fresh XGB baseline
trained on the fold's training part (as kfold.py's, deterministic), and counts the folds on which each
weight is better than CDMPP alone (w = 0). The weights are compared on the development folds only; the
final test is never read.

``--tree-features``: the rows the trees read. ``per-store`` (default): MetaSchedule's PerStoreFeature
rows, kfold.py's XGB baseline. ``compact-ast``: the compact AST's own leaf features (the same per-store
quantities, one leaf per store, plus CDMPP's 7 facts), which the cost model computes anyway: a tree model
on them would cost the tuner no featurizing.

    python benchmarks/kfold_blend.py --name NAME [--weights 0 0.2 0.35 0.5 1] [--folds F ...]
                                     [--tree-features per-store|compact-ast] [--out-dir benchmarks/results]
                                     [--threads N]

Reads ``OUT/kfold-NAME/<fold>.json`` (split file, its digest and checkpoint); exit code 2 with one line
when there is none, a split file changed since, or a checkpoint is missing. Writes
``OUT/kfold-blend-NAME.{json,md}`` (``kfold-blend-NAME-compact-ast.*`` with ``--tree-features compact-ast``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.atomic_io import write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench.accuracy import (METRIC_LABELS, METRICS, baseline_predictions, clip_predictions,  # noqa: E402
                                      format_metric, improvement, load_split, read_fold_results)
from cdmpp_tvm.baselines import XGBBaseline  # noqa: E402
from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.data.feature_cache import COMPACT_AST, load_cached_features  # noqa: E402
from cdmpp_tvm.data.splits import read_split, split_digest  # noqa: E402
from cdmpp_tvm.errors import UserError  # noqa: E402
from cdmpp_tvm.evaluation import compute_metrics, format_number  # noqa: E402
from cdmpp_tvm.model.checkpoint import load_checkpoint  # noqa: E402
from cdmpp_tvm.model.tree_head import blend_latencies  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="name of the k-fold run (benchmarks/kfold.py --name)")
    p.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.2, 0.35, 0.5, 1.0],
                   help="weights of XGB's ln latency in the blend (0 = CDMPP alone, 1 = XGB alone)")
    p.add_argument("--folds", nargs="+", default=None, help="fold names (default: every fold the run scored)")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--tree-features", choices=TREE_FEATURES, default="per-store",
                   help="rows the XGB trees read (default: per-store, kfold.py's baseline)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for XGB (default: all)")
    args = p.parse_args(argv)
    try:
        if any(not 0.0 <= w <= 1.0 for w in args.weights):
            raise UserError(f"--weights {args.weights}: every weight must be in [0, 1]")
        weights = sorted(set(args.weights) | {0.0})
        out = Path(args.out_dir)
        folds = {}
        for fold, result in _fold_results(out, args.name, args.folds).items():
            folds[fold] = blend_fold(result, weights, args.tree_features, args.threads)
            print(f"{fold}: " + "; ".join(f"w {w:g} Spearman {format_number(folds[fold][_key(w)]['spearman'])} "
                                           f"top-1 {format_number(folds[fold][_key(w)]['top1'])}" for w in weights),
                  flush=True)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = {"meta": {"command": benchmark_command(__file__, argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                       "name": args.name, "weights": weights, "tree_features": args.tree_features},
              "folds": folds, "summary": summarize(folds, weights)}
    stem = out / (f"kfold-blend-{args.name}" + ("" if args.tree_features == "per-store" else f"-{args.tree_features}"))
    write_json_atomic(stem.with_suffix(".json"), report)
    write_text_atomic(stem.with_suffix(".md"), _markdown(report))
    print(f"wrote {stem}.json and .md")
    return 0


TREE_FEATURES = ("per-store", "compact-ast")


def _key(w: float) -> str:
    return f"{w:g}"


def _fold_results(out: Path, name: str, folds: list[str] | None) -> dict[str, dict]:
    results = read_fold_results(out, name, folds)
    for fold, result in results.items():
        split = Path(result["split"])
        if not split.is_file() or split_digest(split) != result["split_digest"]:
            raise UserError(f"{split}: missing or changed since fold {fold} of {name} was scored; rerun benchmarks/kfold.py")
        if not Path(result["checkpoint"]).is_file():
            raise UserError(f"{result['checkpoint']}: no such checkpoint (benchmarks/kfold.py --name {name} trains it)")
    return results


def blend_fold(result: dict, weights: list[float], tree_features: str = "per-store",
               threads: int | None = None) -> dict[str, dict]:
    """{weight: compute_metrics' overall metrics} of the blend on one fold of a k-fold run."""
    train_dirs, test_dirs = read_split(Path(result["split"]))
    split = load_split(train_dirs, test_dirs)
    cdmpp = load_checkpoint(result["checkpoint"]).predict_latency_s(split.test_data.asts, split.test_data.device,
                                                                    with_tree_head=False)
    if tree_features == "per-store":
        xgb = baseline_predictions(split, ("XGB",), threads)[0]["XGB"]
    else:  # the compact AST's leaves: every training record the compact-AST cache holds
        train, _ = load_cached_features(train_dirs, COMPACT_AST)
        trees = XGBBaseline(n_threads=threads).fit(train.rows["leaf_features"], train.latencies, train.groups)
        xgb = trees.predict([ast.leaf_features for ast in split.test_data.asts])
    cdmpp, xgb = (clip_predictions(p)[0] for p in (cdmpp, xgb))
    return {_key(w): compute_metrics(blend_latencies(cdmpp, xgb, w), split.true_s, split.groups,
                                     split.programs)["overall"] for w in weights}


def summarize(folds: dict[str, dict], weights: list[float]) -> dict[str, dict]:
    """{weight: {metric: {"mean", "std", "folds_better"}}}: mean and sample std over the folds, and on
    how many folds the weight beats w = 0 (CDMPP alone)."""
    summary = {}
    for w in weights:
        summary[_key(w)] = {}
        for m in METRICS:
            pairs = [(r["0"][m], r[_key(w)][m]) for r in folds.values()
                     if r["0"].get(m) is not None and r[_key(w)].get(m) is not None]
            values = np.array([v for _, v in pairs], dtype=float)
            summary[_key(w)][m] = None if not pairs else {
                "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                "folds_better": int(sum(improvement(m, b, v) > 0 for b, v in pairs)), "n_folds": len(pairs)}
    return summary


def _markdown(report: dict) -> str:
    meta, summary = report["meta"], report["summary"]
    lines = [f"# k-fold `{meta['name']}`: CDMPP blended with XGB ({meta['tree_features']} features)", "",
             f"{len(report['folds'])} fold(s), {meta['date']}. Prediction exp((1 - w) ln CDMPP + w ln XGB); XGB trained "
             f"on each fold's training records, on {meta['tree_features']} feature rows. Mean ± std over folds; in brackets the folds on which the weight "
             "beats CDMPP alone (w = 0): MAPE lower, ranking metrics higher, spread closer to 1.", "",
             "| w | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for w, row in summary.items():
        cells = []
        for m in METRICS:
            s = row[m]
            if s is None:
                cells.append("n/a")
                continue
            cell = format_metric(m, s["mean"]) + ("" if s["std"] is None else f" ± {format_metric(m, s['std'])}")
            cells.append(cell + ("" if w == "0" else f" ({s['folds_better']} of {s['n_folds']})"))
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines += ["", "Per fold:", "", "| fold | w | " + " | ".join(METRIC_LABELS[m] for m in METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for fold, rows in report["folds"].items():
        for i, (w, r) in enumerate(rows.items()):
            lines.append(f"| {fold if i == 0 else ''} | {w} | " + " | ".join(format_metric(m, r.get(m)) for m in METRICS) + " |")
    lines += ["", "Command:", "", "```", meta["command"], "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
