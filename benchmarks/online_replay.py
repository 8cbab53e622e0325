"""Benchmark: learning a task online, replayed on measured programs (no measuring, CPU only).

Each task of ``--database`` is a pool: its measured programs (valid and failed). A cost model, driven
through the MetaSchedule ``PyCostModel`` interface exactly as the tuner drives it, scores the pool's
programs it has not "measured" yet; the ``--batch`` best-scored ones are measured, i.e. their recorded
latencies are revealed to it through ``update``, for ``--rounds`` rounds. It asks what a tuner asks of
an online learner: how quickly does the pick reach the task's best program, and how well does each
learner rank a fresh batch before it learns from it. Pick a database the checkpoint was *not* trained
on (its tasks are unseen), so the pretrained prior is as wrong as it will be on a user's new network.

Models (one instance per model and seed, tasks in order, as one tuning run of several tasks):
``cdmpp`` (the checkpoint + online transformer + per-task boosted residual, the guard choosing),
``cdmpp-noemb`` (the boosted learner without the program embedding among its inputs), ``cdmpp-noboost``
(``BoostedConfig(enabled=False)``: the cost model before the boosted learner),
``cdmpp-noonline`` (``OnlineConfig(max_steps_per_update=0)``: the prior and the boosted learner, the
transformer never trained online), ``cdmpp-short`` (online updates of at most 8 steps / 0.5 s instead
of 32 / 2 s), ``cdmpp-frozen`` (``OnlineConfig(enabled=False)``: the prior alone), ``xgb`` (MetaSchedule's XGBModel as
``bench-search`` builds it) and ``random``.

    python benchmarks/online_replay.py --database data/dataset-cpu-v2-znver5 --checkpoint llvm-cpu \\
        --batch 8 --rounds 3 --seeds 0 1 --exclude-final-test configs/protocol/cpu-generalization.yaml \\
        [--out-dir benchmarks/results] [--name NAME]

Writes ``online_replay-NAME.{json,md,png}``: per model and round, the geometric mean over tasks of
(pool best latency / best latency found), the share of tasks whose pool best was found, and per task.
Reported per round k (k x batch programs revealed); round 1 is the prior alone for every model.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tvm.s_tir import meta_schedule as ms  # noqa: E402
from tvm.target.codegen import llvm_get_system_cpu  # noqa: E402

from cdmpp_tvm import CDMPPCostModel, OnlineConfig  # noqa: E402
from cdmpp_tvm.atomic_io import write_figure_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench.report import benchmark_command  # noqa: E402
from cdmpp_tvm.cost_model.boosted import BoostedConfig  # noqa: E402
from cdmpp_tvm.cost_model.online import pairwise_accuracy  # noqa: E402
from cdmpp_tvm.data.protocol import load_protocol  # noqa: E402
from cdmpp_tvm.data.reader import find_databases, read_database  # noqa: E402
from cdmpp_tvm.data.splits import index_tasks, network_of  # noqa: E402
from tvm_patches.quiet_logging import quiet_metaschedule_logging  # noqa: E402

# CDMPPCostModel.stats() kept in the report: where its time went and which model the guard chose.
STATS = ("predict_seconds", "update_seconds", "boosted_fit_seconds", "boosted_fits", "online_steps",
         "predictions_by_model", "fallbacks")
MODELS = ("cdmpp", "cdmpp-noemb", "cdmpp-noboost", "cdmpp-noonline", "cdmpp-short", "cdmpp-frozen", "xgb", "random")


def make_model(name: str, checkpoint: str, seed: int):
    if name == "cdmpp":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed)
    if name == "cdmpp-noemb":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed, boosted=BoostedConfig(use_embedding=False))
    if name == "cdmpp-noboost":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed, boosted=BoostedConfig(enabled=False))
    if name == "cdmpp-noonline":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed, online=OnlineConfig(max_steps_per_update=0))
    if name == "cdmpp-short":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed,
                              online=OnlineConfig(max_steps_per_update=8, time_budget_s=0.5))
    if name == "cdmpp-frozen":
        return CDMPPCostModel(checkpoint=checkpoint, seed=seed, online=OnlineConfig(enabled=False))
    if name == "xgb":
        return ms.cost_model.XGBModel(extractor=ms.feature_extractor.PerStoreFeature(), adaptive_training=True)
    if name == "random":
        return ms.cost_model.RandomModel(seed=seed)
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def load_pools(databases: list[str], min_valid: int, protocol: str | None) -> list[dict]:
    """Per task directory with at least ``min_valid`` valid programs: context, candidates, results, latencies.
    With a ``protocol`` YAML, tasks of its final-test networks (any batch size) are left out."""
    final = set(load_protocol(protocol).final_test) if protocol else set()
    held_out = {t.path for root in databases for t in index_tasks(root) if {network_of(g) for g in t.tags} & final}
    pools = []
    for d in find_databases(databases):
        if d in held_out:
            continue
        read = read_database(d)
        recs = read.records
        valid = [m.latency_s for m in recs if m.latency_s is not None]
        if len(valid) < min_valid or len(set(valid)) < 2:
            continue
        first = recs[0].record
        pools.append({
            "task": d.name,
            "context": ms.TuneContext(mod=first.workload.mod, target=first.target, task_name=d.name),
            "candidates": [m.record.as_measure_candidate() for m in recs],
            "results": [ms.runner.RunnerResult(run_secs=[float(s) for s in m.record.run_secs], error_msg=None)
                        if m.latency_s is not None else ms.runner.RunnerResult(run_secs=None, error_msg="failed")
                        for m in recs],
            "latency": np.asarray([np.inf if m.latency_s is None else m.latency_s for m in recs]),
        })
    return pools


def replay(model, pool: dict, batch: int, rounds: int) -> dict:
    """Rounds of predict -> measure the ``batch`` best-scored unmeasured programs -> update.
    -> best latency found after each round, and the pairwise accuracy of each round's scores on the
    batch it then measured (before learning from it)."""
    remaining = list(range(len(pool["candidates"])))
    best, found, fresh_acc = np.inf, [], []
    for _ in range(rounds):
        if not remaining:
            break
        scores = np.asarray(model.predict(pool["context"], [pool["candidates"][i] for i in remaining]))
        order = np.argsort(-scores, kind="stable")[:batch]
        picked = [remaining[i] for i in order]
        lat = pool["latency"][picked]
        ok = np.isfinite(lat)
        if ok.sum() > 1 and np.ptp(lat[ok]) > 0:
            fresh_acc.append(pairwise_accuracy(-scores[order][ok], lat[ok]))
        best = min(best, float(lat.min()))
        found.append(best)
        model.update(pool["context"], [pool["candidates"][i] for i in picked], [pool["results"][i] for i in picked])
        picked_set = set(picked)
        remaining = [i for i in remaining if i not in picked_set]
    return {"best_found": found, "fresh_pairwise_accuracy": fresh_acc}


def summarize(runs: dict, pools: list[dict], rounds: int) -> dict:
    """Per model: geomean over tasks and seeds of pool best / best found, share of pool bests found,
    mean fresh-batch pairwise accuracy, per round."""
    pool_best = {p["task"]: float(p["latency"].min()) for p in pools}
    out = {}
    for model, per_seed in runs.items():
        ratios = [[] for _ in range(rounds)]
        hits = [[] for _ in range(rounds)]
        acc = [[] for _ in range(rounds)]
        for per_task in per_seed.values():
            for task, r in per_task.items():
                for k, b in enumerate(r["best_found"]):
                    ratios[k].append(pool_best[task] / b if np.isfinite(b) else 0.0)
                    hits[k].append(float(b <= pool_best[task]))
                for k, a in enumerate(r["fresh_pairwise_accuracy"]):
                    acc[k].append(a)
        out[model] = {
            "speed_vs_pool_best": [float(np.exp(np.mean(np.log(np.maximum(v, 1e-9))))) if v else None for v in ratios],
            "pool_best_found": [float(np.mean(v)) if v else None for v in hits],
            "fresh_pairwise_accuracy": [float(np.mean(v)) if v else None for v in acc],
        }
    return out


def markdown(report: dict) -> str:
    s, b = report["settings"], report["settings"]["batch"]
    lines = [f"# Online learning, pool replay: {report['name']}", "",
             f"`{report['command']}`", "",
             f"{report['n_tasks']} tasks from {', '.join(s['database'])} (pools of {report['pool_size_median']:.0f} "
             f"programs, median), checkpoint `{s['checkpoint']}`, batch {b}, {s['rounds']} rounds, seeds "
             f"{s['seeds']}; {report['machine']}. Speed = geomean over tasks and seeds of pool-best latency / best "
             "latency found (1.0 = the pool's best program found); fresh acc. = pairwise ranking accuracy of the "
             "round's scores on the batch they picked, before learning from it.", "",
             "| model | " + " | ".join(f"speed @{b * (k + 1)}" for k in range(s["rounds"])) + " | "
             + " | ".join(f"best found @{b * (k + 1)}" for k in range(s["rounds"])) + " | "
             + " | ".join(f"fresh acc. r{k + 1}" for k in range(s["rounds"])) + " | seconds |",
             "|---|" + "---|" * (3 * s["rounds"] + 1)]
    for model, r in report["summary"].items():
        cells = [f"{v:.3f}" if v is not None else "-" for v in
                 r["speed_vs_pool_best"] + r["pool_best_found"] + r["fresh_pairwise_accuracy"]]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {report['seconds'][model]:.0f} |")
    lines += ["", "CDMPPCostModel statistics per model and seed (`stats()`):", ""]
    for model, per_seed in report["cost_model_stats"].items():
        for seed, st in per_seed.items():
            lines.append(f"* {model}, seed {seed}: " + ", ".join(
                f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in st.items()))
    return "\n".join(lines) + "\n"


def plot(report: dict, path: Path) -> None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    b = report["settings"]["batch"]
    for model, r in report["summary"].items():
        x = [b * (k + 1) for k in range(len(r["speed_vs_pool_best"]))]
        ax[0].plot(x, r["speed_vs_pool_best"], marker="o", label=model)
        ax[1].plot(x, r["pool_best_found"], marker="o", label=model)
    ax[0].set(xlabel="programs measured", ylabel="pool best / best found (geomean)", title="speed of the pick")
    ax[1].set(xlabel="programs measured", ylabel="share of tasks", title="pool best found")
    ax[0].legend()
    fig.tight_layout()
    write_figure_atomic(path, fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--database", nargs="+", required=True, help="measured databases (tasks the checkpoint did not see)")
    p.add_argument("--checkpoint", default="llvm-cpu")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--max-tasks", type=int, default=None, help="the first N task directories only")
    p.add_argument("--exclude-final-test", default=None, metavar="PROTOCOL",
                   help="protocol YAML whose final-test networks' tasks are left out (no design choice sees them)")
    p.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--name", default="unseen")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    quiet_metaschedule_logging()

    pools = load_pools(args.database, args.batch * args.rounds + 1, args.exclude_final_test)[: args.max_tasks]
    print(f"{len(pools)} task pools", flush=True)
    runs, seconds, cost_model_stats = {}, {}, {}
    for name in args.models:
        start = time.perf_counter()
        runs[name] = {}
        for seed in args.seeds:
            model = make_model(name, args.checkpoint, seed)
            runs[name][seed] = {pool["task"]: replay(model, pool, args.batch, args.rounds) for pool in pools}
            if isinstance(model, CDMPPCostModel):
                s = model.stats()
                cost_model_stats.setdefault(name, {})[seed] = {k: s[k] for k in STATS}
        seconds[name] = time.perf_counter() - start
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    report = {"name": args.name, "command": benchmark_command("benchmarks/online_replay.py", argv),
              "settings": {"database": args.database, "checkpoint": args.checkpoint, "batch": args.batch,
                           "rounds": args.rounds, "seeds": args.seeds,
                           "exclude_final_test": args.exclude_final_test},
              "machine": f"{platform.machine()}, {llvm_get_system_cpu()}, {os.cpu_count()} cores",
              "n_tasks": len(pools), "pool_size_median": float(np.median([len(p["latency"]) for p in pools])),
              "summary": summarize(runs, pools, args.rounds), "seconds": seconds,
              "cost_model_stats": cost_model_stats,
              "per_task": {m: {str(s): v for s, v in r.items()} for m, r in runs.items()}}
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"online_replay-{args.name}.json", report)
    write_text_atomic(out / f"online_replay-{args.name}.md", markdown(report))
    plot(report, out / f"online_replay-{args.name}.png")
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
