"""Benchmark: adapting to a new device from few measurements (CDMPP's cross-device experiment).

A source device's dataset trains (or has trained) the BASE checkpoint; a target device's dataset is split
by whole tasks into *pool* tasks and *held-out* tasks, and each pool task's records again into
selectable records (the *pool*: what one could measure) and *same-task* test records (fixed seed,
``--same-task-test-fraction``). For every budget B of target samples (default 50, 100, 200, 500, 1000) and
seed, B pool records are chosen and six predictors are built from them, then scored on both test sets:
the same tasks' other programs (CDMPP's cross-device setting: the tasks are known, the device is new)
and the held-out tasks (MAPE over records, top-1 / top-5 / Spearman per task averaged over tasks:
``cdmpp_tvm.evaluation.compute_metrics``):

* ``finetune-kmeans``: BASE fine-tuned (``cdmpp_tvm.adaptation.finetune``, CMD towards the source
  programs) on the B records chosen by KMeans over BASE's embeddings (with the target device embedding)
  of the pool: ``cdmpp_tvm.adaptation.kmeans_select``, as ``cdmpp-tvm select`` does, but among the
  already measured pool records, so the benchmark runs offline on collected data;
* ``finetune-random``: the same on B records chosen uniformly;
* ``calibrate``: BASE unchanged, its latencies scaled by one factor for the new device, exp(median
  ln(measured / predicted)) over the KMeans-chosen records: a device calibration that never changes a
  ranking (per task it would rest on one or two records at these budgets);
* ``residual-trees``: BASE unchanged plus boosted trees on the residual ln(measured / BASE) of the
  KMeans-chosen records (``cost_model.boosted.TaskBooster``, the tuner's learner of the task at hand,
  here fitted once across all chosen records: what the new device changes, as a function of the
  program's leaf features, BASE's program embedding and BASE's own prediction);
* ``scratch``: CDMPP (BASE's architecture) trained from scratch on the KMeans-chosen records;
* ``xgb``: ``cdmpp_tvm.baselines.XGBBaseline`` trained on the KMeans-chosen records;

plus ``base`` (BASE without any target sample, budget 0) as the reference. Devices: any two datasets,
e.g. two CPUs, or one CPU with two llvm targets (num-cores 2 vs 1), or a CPU source and a GPU target.

    python benchmarks/cross_device.py --source SRC_DIR [...] --target TGT_DIR [...]
        [--base-checkpoint CKPT | --base-config configs/train/default.yaml [--base-epochs N]]
        [--held-out-fraction 0.3 | --held-out-tasks NAME ...] [--same-task-test-fraction 0.5] [--budgets 50 100 200 500 1000] [--seeds 0 1 2]
        [--epochs 100] [--scratch-epochs 300] [--cmd-weight 1.0] [--threads N] [--out-dir benchmarks/results]

Writes ``cross_device.json`` (every run's metrics, the means over seeds, the settings; rewritten after
every run, and a rerun with the same settings skips the runs it holds), ``cross_device.md`` (tables of
MAPE and top-1 by budget) and ``cross_device.png`` (MAPE and top-1 vs budget) to ``--out-dir``.
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

from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.adaptation import default_finetune_config, finetune  # noqa: E402
from cdmpp_tvm.atomic_io import write_figure_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.baselines import XGBBaseline  # noqa: E402
from cdmpp_tvm.cost_model.boosted import BoostedConfig, TaskBooster, program_vectors  # noqa: E402
from cdmpp_tvm.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from cdmpp_tvm.model.tree_head import LOWEST_LATENCY_S  # noqa: E402
from cdmpp_tvm.data.dataset import TrainingData, split_by_group  # noqa: E402
from cdmpp_tvm.data.feature_cache import (  # noqa: E402
    COMPACT_AST,
    PER_STORE,
    load_cached_features,
    same_records,
    to_training_data,
)
from cdmpp_tvm.evaluation import (  # noqa: E402
    compute_metrics,
    format_number,
    format_percent,
    median_log_ratio,
    program_keys,
    task_labels,
)
from cdmpp_tvm.model.inference import default_torch_device, predict_transformed  # noqa: E402
from cdmpp_tvm.adaptation import kmeans_select, random_select  # noqa: E402
from cdmpp_tvm.training import load_train_config, train  # noqa: E402

METHODS = ("finetune-kmeans", "finetune-random", "calibrate", "residual-trees", "scratch", "xgb")
REPORTED = ("mape", "top1", "top5", "spearman")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", nargs="+", required=True, help="database directories of the source device")
    p.add_argument("--target", nargs="+", required=True, help="database directories of the target device")
    p.add_argument("--base-checkpoint", default=None, help="BASE trained on the source device (default: train it)")
    p.add_argument("--base-config", default=str(Path(__file__).resolve().parent.parent / "configs/train/default.yaml"),
                   help="training YAML for BASE when --base-checkpoint is not given")
    p.add_argument("--base-epochs", type=int, default=None)
    held = p.add_mutually_exclusive_group()
    held.add_argument("--held-out-fraction", type=float, default=0.3, help="share of target tasks held out (default 0.3)")
    held.add_argument("--held-out-tasks", nargs="+", default=None, help="target task names held out")
    p.add_argument("--same-task-test-fraction", type=float, default=0.5,
                   help="share of each pool task's records held out as same-task test records (default 0.5)")
    p.add_argument("--budgets", type=int, nargs="+", default=[50, 100, 200, 500, 1000])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=100, help="fine-tuning epochs at most")
    p.add_argument("--scratch-epochs", type=int, default=300, help="epochs at most for CDMPP from scratch")
    p.add_argument("--cmd-weight", type=float, default=1.0)
    p.add_argument("--time-limit", type=float, default=None, help="seconds per CDMPP training run at most")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for XGB (default: all)")
    p.add_argument("--device", default="auto", help="torch device for CDMPP (auto, cpu, cuda)")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = p.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    # -- data: target records with both feature kinds, split by whole tasks into pool tasks and held-out
    # tasks; each pool task's records are split again into selectable records and same-task test records
    source = to_training_data(load_cached_features(args.source, COMPACT_AST)[0])
    tgt_ast, facts = load_cached_features(args.target, COMPACT_AST)
    tgt_rows, _ = load_cached_features(args.target, PER_STORE)
    tgt_ast, tgt_rows, left_out = same_records(tgt_ast, tgt_rows)
    if left_out:
        print(f"note: {left_out} target record(s) featurized by only one feature kind are left out", flush=True)
    names = task_labels(tgt_ast.groups, facts["task_names"])
    if args.held_out_tasks:
        unknown = sorted(set(args.held_out_tasks) - set(names.tolist()))
        if unknown:
            print(f"error: held-out task(s) {unknown} are not target tasks", file=sys.stderr)
            return 2
        is_test = np.isin(names, args.held_out_tasks)
        pool_task_idx, test_idx = np.nonzero(~is_test)[0], np.nonzero(is_test)[0]
    else:
        pool_task_idx, test_idx = split_by_group(tgt_ast.groups, args.held_out_fraction, 0)
    pool_idx, same_idx = split_within_groups(pool_task_idx, tgt_ast.groups, args.same_task_test_fraction)
    if len(source) == 0 or len(pool_idx) == 0 or len(test_idx) == 0:
        print(f"error: {len(source)} source records, {len(pool_idx)} pool and {len(test_idx)} held-out target "
              "records; need all three", file=sys.stderr)
        return 2
    target = to_training_data(tgt_ast)
    pool = target.subset(pool_idx)
    pool_rows = [tgt_rows.rows["features"][i] for i in pool_idx]
    scopes = {name: EvalScope(target.subset(idx), [tgt_rows.rows["features"][i] for i in idx], names[idx])
              for name, idx in (("held_out", test_idx), ("same_tasks", same_idx)) if len(idx)}
    print(f"source: {len(source)} records; target pool: {len(pool)} records of {len(np.unique(pool.groups))} tasks; "
          f"same-task test: {len(same_idx)} records; held out: {len(test_idx)} records of "
          f"{len(np.unique(names[test_idx]))} tasks", flush=True)

    base = _base_checkpoint(args, source, out_dir)
    dev = default_torch_device(args.device)
    base.model.to(dev)
    # BASE's outputs on the pool and on each test scope, once: the unchanged-BASE predictors (base,
    # calibrate, residual-trees) index into them for every budget and seed instead of running BASE again.
    pool_base = BaseOutputs.of(base, pool, dev)
    for scope in scopes.values():
        scope.base = BaseOutputs.of(base, scope.data, dev)

    settings = {"source": args.source, "target": args.target, "base": base.path, "budgets": args.budgets,
                "seeds": args.seeds, "epochs": args.epochs, "scratch_epochs": args.scratch_epochs,
                "cmd_weight": args.cmd_weight, "time_limit": args.time_limit,
                "held_out_tasks": sorted(set(names[test_idx].tolist())),
                "same_task_test_fraction": args.same_task_test_fraction, "n_pool": len(pool),
                "n_test": {k: len(v.data) for k, v in scopes.items()}, "n_source": len(source)}
    json_path = out_dir / "cross_device.json"
    runs = {}
    if json_path.exists():
        old = json.loads(json_path.read_text())
        if old.get("settings") == settings:
            runs = old.get("runs", {})
            print(f"resuming: {len(runs)} run(s) already in {json_path}", flush=True)

    def record(key: str, predict, seconds: float, **extra) -> None:
        runs[key] = {"seconds": seconds, **extra}
        for name, scope in scopes.items():
            m = compute_metrics(predict(scope), scope.data.latencies, scope.groups, scope.programs)["overall"]
            runs[key][name] = {k: m[k] for k in REPORTED}
        print(f"  {key:32s} " + "  ".join(f"{n}: MAPE {100 * runs[key][n]['mape']:6.1f}% top-1 "
                                          f"{format_number(runs[key][n]['top1'])}" for n in scopes)
              + f"  ({seconds:.0f} s)", flush=True)
        _save(json_path, settings, runs, argv)

    if "base|0|0" not in runs:
        record("base|0|0", lambda sc: sc.base.latency, 0.0)
    for seed in args.seeds:
        for budget in args.budgets:
            if budget > len(pool):
                print(f"budget {budget} > {len(pool)} pool records: skipped", flush=True)
                continue
            chosen = {"kmeans": kmeans_select(pool_base.embedding, budget, seed), "random": random_select(len(pool), budget, seed)}
            for method in METHODS:
                key = f"{method}|{budget}|{seed}"
                if key in runs:
                    continue
                idx = chosen["random" if method == "finetune-random" else "kmeans"]
                start = time.perf_counter()
                predict, extra = _adapt(method, idx, seed, args, base, pool, pool_base, pool_rows, source)
                record(key, predict, time.perf_counter() - start, **extra)
    summary = _summary(runs)
    _save(json_path, settings, runs, argv, summary)
    write_text_atomic(out_dir / "cross_device.md", _markdown(settings, summary, argv))
    _plot(summary, out_dir / "cross_device.png")
    print(f"wrote {json_path}, {out_dir / 'cross_device.md'} and {out_dir / 'cross_device.png'}")
    return 0


class BaseOutputs:
    """BASE's latency (N,) (tree head blended), program embedding (N, embed_dim) and the boosted trees'
    inputs (``program_vectors``) for N programs, computed once."""

    def __init__(self, latency: np.ndarray, embedding: np.ndarray, vectors: np.ndarray):
        self.latency, self.embedding, self.vectors = latency, embedding, vectors

    @classmethod
    def of(cls, base: Checkpoint, data: TrainingData, dev) -> "BaseOutputs":
        transformed, emb = predict_transformed(base.model, data.asts, data.device, 1024, dev, want_embedding=True)
        return cls(base.latency_s(transformed, data.asts), emb,
                   program_vectors(data.asts, emb, BoostedConfig().first_leaves))


class EvalScope:
    """One set of target test records: CDMPP inputs, per-store rows for XGB, task labels, program keys,
    and BASE's outputs on them (``base``, set once BASE is loaded)."""

    def __init__(self, data: TrainingData, rows: list, groups: np.ndarray):
        self.data, self.rows, self.groups = data, rows, groups
        self.programs = program_keys(data.asts)
        self.base: BaseOutputs | None = None


def split_within_groups(idx: np.ndarray, groups: np.ndarray, fraction: float, seed: int = 0):
    """(selectable, test) indices: ``fraction`` of each group's records in ``idx`` (rounded down, groups
    with fewer than 4 records stay whole in selectable) go to test, chosen with a fixed seed."""
    rng = np.random.default_rng(seed)
    keep, test = [], []
    for g in np.unique(groups[idx]):
        members = rng.permutation(idx[groups[idx] == g])
        n_test = int(len(members) * fraction) if len(members) >= 4 else 0
        test += members[:n_test].tolist()
        keep += members[n_test:].tolist()
    return np.sort(np.asarray(keep, dtype=int)), np.sort(np.asarray(test, dtype=int))


def _adapt(method: str, idx: np.ndarray, seed: int, args, base: Checkpoint, pool: TrainingData,
           pool_base: BaseOutputs, pool_rows: list,
           source: TrainingData):
    """(predict(scope) -> latencies, extra facts) of one predictor built from the pool records ``idx``."""
    if method.startswith("finetune"):
        cfg = default_finetune_config(base, epochs=args.epochs, cmd_weight=args.cmd_weight, seed=seed,
                                      device=args.device, progress=False, time_limit_s=args.time_limit)
        res = finetune(base, pool.subset(idx), source, cfg)
        ck = Checkpoint(res.model, res.label_transform, base.device, tree_head=res.tree_head)
        return (lambda sc: ck.predict_latency_s(sc.data.asts, sc.data.device, device=args.device),
                {"n_tasks_selected": len(np.unique(pool.groups[idx])), "best_epoch": res.history.get("best_epoch")})
    if method == "calibrate":
        predicted = np.maximum(pool_base.latency[idx], LOWEST_LATENCY_S)
        scale = float(np.exp(median_log_ratio(pool.latencies[idx], predicted)))
        return (lambda sc: scale * sc.base.latency), {"scale": scale}
    if method == "residual-trees":
        booster = TaskBooster(BoostedConfig(nthread=args.threads or os.cpu_count() or 1), seed)
        booster.fit(pool_base.vectors[idx], np.log(pool.latencies[idx]), _log_latency(pool_base)[idx])
        return (lambda sc: np.exp(booster.predict(sc.base.vectors, _log_latency(sc.base)))), {}
    if method == "scratch":
        _, base_cfg = load_train_config(args.base_config)
        cfg = _replace(base_cfg, epochs=args.scratch_epochs, seed=seed, device=args.device, progress=False,
                       time_limit_s=args.time_limit, cmd_weight=0.0,
                       batch_size=min(base_cfg.batch_size, 64), warmup_steps=min(base_cfg.warmup_steps, 20))
        model, lt, hist = train(pool.subset(idx), base.config, cfg)
        ck = Checkpoint(model, lt, base.device)
        return (lambda sc: ck.predict_latency_s(sc.data.asts, sc.data.device, device=args.device),
                {"best_epoch": hist.get("best_epoch")})
    xgb = XGBBaseline(n_threads=args.threads, seed=seed)
    xgb.fit([pool_rows[i] for i in idx], pool.latencies[idx], pool.groups[idx])
    return (lambda sc: xgb.predict(sc.rows)), {"rounds": xgb.history.get("rounds")}


def _log_latency(outputs: BaseOutputs) -> np.ndarray:
    """BASE's ln latency: the boosted trees' base margin."""
    return np.log(np.maximum(outputs.latency, LOWEST_LATENCY_S))


def _base_checkpoint(args, source: TrainingData, out_dir: Path) -> Checkpoint:
    if args.base_checkpoint:
        return load_checkpoint(args.base_checkpoint)
    path = out_dir / "cross_device_base.pt"
    if path.exists():
        print(f"BASE: reusing {path} (delete it to retrain)", flush=True)
        return load_checkpoint(path)
    model_cfg, cfg = load_train_config(args.base_config)
    cfg = _replace(cfg, progress=False, device=args.device, cmd_weight=0.0,
                   **({} if args.base_epochs is None else {"epochs": args.base_epochs}))
    print(f"BASE: training on {len(source)} source records ({cfg.epochs} epochs at most)", flush=True)
    model, lt, hist = train(source, model_cfg, cfg)
    save_checkpoint(path, model, lt, {"name": "source", "descriptor": source.device[0].tolist()
                                      if source.device is not None else []},
                    {"train_config": cfg.to_dict(), "history": hist, "databases": list(args.source)})
    return load_checkpoint(path)


def _replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


SCOPES = {"same_tasks": "the pool tasks' other records (same tasks, programs never selected)",
          "held_out": "target tasks held out entirely"}


def _summary(runs: dict) -> dict:
    """{scope: {method: {budget: {metric: mean over seeds, "n_seeds"}}}}; "base" at budget 0."""
    out: dict = {}
    for key, r in runs.items():
        method, budget, _ = key.split("|")
        for scope in SCOPES:
            if scope in r:
                out.setdefault(scope, {}).setdefault(method, {}).setdefault(int(budget), []).append(r[scope])
    return {scope: {m: {b: {**{k: _mean([r[k] for r in rs]) for k in REPORTED}, "n_seeds": len(rs)}
                        for b, rs in sorted(by_budget.items())} for m, by_budget in methods.items()}
            for scope, methods in out.items()}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _save(path: Path, settings: dict, runs: dict, argv, summary: dict | None = None) -> None:
    payload = {"meta": {"command": benchmark_command(__file__, argv), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                        "units": {"mape": "fraction"}},
               "settings": settings, "runs": runs, "summary": summary or _summary(runs)}
    write_text_atomic(path, json.dumps(payload, indent=1) + "\n")


def _markdown(settings: dict, summary: dict, argv) -> str:
    lines = ["# Cross-device adaptation: accuracy on the target device vs target samples", "",
             (f"Source: {', '.join(settings['source'])} ({settings['n_source']} records). Target: "
              f"{', '.join(settings['target'])}: pool of {settings['n_pool']} selectable records; test records: "
              + ", ".join(f"{n} {k}" for k, n in settings["n_test"].items())
              + f" ({len(settings['held_out_tasks'])} held-out tasks). Means over seeds {settings['seeds']}."), "",
             "MAPE over the test records; top-1 / Spearman per task, averaged over tasks (top-1 = best latency / "
             "latency of the program predicted fastest).", ""]
    for scope, what in SCOPES.items():
        by_method = summary.get(scope, {})
        if not by_method:
            continue
        budgets = sorted({b for m in METHODS for b in by_method.get(m, {})})
        base = by_method.get("base", {}).get(0, {})
        lines += [f"## Test: {what}", "",
                  f"BASE without target samples: MAPE {format_percent(base.get('mape'))}, Spearman {format_number(base.get('spearman'))},"
                  f" top-1 {format_number(base.get('top1'))}.", ""]
        for metric, label, fmt in (("mape", "MAPE", format_percent), ("spearman", "Spearman", format_number),
                                   ("top1", "top-1", format_number)):
            lines += [f"### {label}", "", "| method | " + " | ".join(str(b) for b in budgets) + " |",
                      "|---|" + "---|" * len(budgets)]
            for m in METHODS:
                lines.append(f"| {m} | " + " | ".join(fmt(by_method.get(m, {}).get(b, {}).get(metric))
                                                      for b in budgets) + " |")
            lines.append("")
    lines += ["Command:", "", "```", benchmark_command(__file__, argv), "```", ""]
    return "\n".join(lines)


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - matplotlib.ticker.NullLocator

    scopes = [s for s in SCOPES if summary.get(s)]
    fig, axes = plt.subplots(len(scopes), 2, figsize=(10, 4 * len(scopes)), squeeze=False)
    for row, scope in zip(axes, scopes):
        by_method = summary[scope]
        base = by_method.get("base", {}).get(0, {})
        budgets = sorted({b for m in METHODS for b in by_method.get(m, {})})
        for ax, metric, label in ((row[0], "mape", "MAPE (fraction)"), (row[1], "top1", "top-1 score")):
            for m in METHODS:
                pts = [(b, v[metric]) for b, v in by_method.get(m, {}).items() if v.get(metric) is not None]
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=m)
            if base.get(metric) is not None:
                ax.axhline(base[metric], color="gray", linestyle="--", label="base (no target samples)")
            ax.set(xscale="log", xlabel="target-device samples", ylabel=label, title=f"test: {scope}")
            if budgets:
                ax.set_xticks(budgets, [str(b) for b in budgets])
                ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
            ax.grid(alpha=0.3)
        row[1].legend(fontsize=8)
    fig.suptitle("Cross-device adaptation")
    fig.tight_layout()
    write_figure_atomic(path, fig)


if __name__ == "__main__":
    sys.exit(main())
