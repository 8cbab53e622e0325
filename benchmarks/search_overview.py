"""Search benchmark overview: several ``bench-search`` result directories (one network each) side by side.

Reads each directory's ``results.json`` (written by ``cdmpp-tvm bench-search``) and tabulates, per
network, over its tunable tasks (every run measured the full budget): the geometric-mean speedup of
cdmpp's best latency over each baseline at each budget, over all seeds and per seed; the trials per task
cdmpp needs to reach xgb's weighted latency at xgb's full budget; and each model's cost-model share of
tuning wall time; and xgb's headroom (how far its best is from the best program any run found, which
bounds any model's speedup over it). Each speedup comes with a 95 % bootstrap interval over the network's
(task, seed) pairs (``scipy.stats.bootstrap``, percentile method, fixed random state): with 2 seeds and 5-7
tasks it says how far a target such as 1.25x is from being decided by the data. Each directory is a row,
named after it without the ``<name>-`` prefix. Nothing is tuned here.

    python benchmarks/search_overview.py benchmarks/results/search-unseen-kws_dscnn \\
        benchmarks/results/search-unseen-dcgan_generator benchmarks/results/search-unseen-gpt2_block_seq64 \\
        --name search-unseen [--out-dir benchmarks/results]

Writes ``<name>-overview.{json,md,png}``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
from scipy import stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cdmpp_tvm.atomic_io import write_figure_atomic, write_json_atomic, write_text_atomic  # noqa: E402
from cdmpp_tvm.bench import MODELS  # noqa: E402
from cdmpp_tvm.bench.report import benchmark_command, best_at, geomean  # noqa: E402
from cdmpp_tvm.errors import UserError  # noqa: E402


def bootstrap_geomean_interval(ratios: list[float | None], confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the geometric mean of ``ratios`` (Nones dropped), resampling the
    ratios themselves (here: one per task and seed, taken as independent); None with fewer than 2."""
    logs = np.log([r for r in ratios if r is not None and r > 0])
    if len(logs) < 2:
        return None
    if np.ptp(logs) == 0:  # every pair agrees: the interval is that point (bootstrap would return NaN)
        return [float(np.exp(logs[0]))] * 2
    res = stats.bootstrap((logs,), np.mean, confidence_level=confidence, method="percentile",
                          n_resamples=10_000, random_state=0)
    return [float(np.exp(res.confidence_interval.low)), float(np.exp(res.confidence_interval.high))]


def network_overview(report: dict, label: str) -> dict:
    """One network's row (named ``label``): tunable tasks, per-budget speedups (all seeds and per seed),
    trials to match xgb, cost-model share, all from ``report`` (a bench-search results.json)."""
    cfg, summary = report["config"], report["summary"]
    tunable = [row["task"] for row in summary["per_task"] if row["tunable"]]
    by = {(r["model"], r["task"], r["seed"]): r for r in report["runs"]}
    bases = [m for m in cfg["models"] if m != "cdmpp"]

    def best(model: str, task: str, seed: int, budget: int) -> float | None:
        run = by.get((model, task, seed))
        return best_at(run["curve"], budget) if run else None

    # Per budget, baseline and seed: (baseline best / cdmpp best) on each tunable task, None where a run is
    # missing or found nothing valid within the budget (geomean and the bootstrap drop those).
    ratios = {str(budget): {base: [[b / c if (b := best(base, t, s, budget)) and (c := best("cdmpp", t, s, budget))
                                    else None for t in tunable]
                                   for s in cfg["seeds"]]
                            for base in bases}
              for budget in cfg["budgets"]}
    per_seed = {b: {base: [geomean(seed_ratios) for seed_ratios in by_seed] for base, by_seed in by_base.items()}
                for b, by_base in ratios.items()}
    # The bootstrap's fixed random state draws indices, so the pairs keep one order: task by task, seeds within.
    interval = {b: {base: bootstrap_geomean_interval([r for task_ratios in zip(*by_seed) for r in task_ratios])
                    for base, by_seed in by_base.items()}
                for b, by_base in ratios.items()}
    # Headroom: how far xgb's best within each budget is from the best program any run of any model found for
    # the task (geomean over tunable tasks and seeds). No model can beat xgb by more than this with the
    # programs this benchmark found, so it bounds what a speedup target at that budget can ask.
    best_found = {t: min(b for (m, task, s), r in by.items() if task == t for _, b in r["curve"] if b) for t in tunable}
    headroom = {str(budget): geomean([b / best_found[t] if (b := best("xgb", t, s, budget)) else None
                                      for t in tunable for s in cfg["seeds"]])
                for budget in cfg["budgets"]} if "xgb" in cfg["models"] else {}
    return {"network": label,
            "n_tasks": len(report["tasks"]), "n_tunable": len(tunable), "seeds": cfg["seeds"],
            "models": cfg["models"], "budgets": cfg["budgets"], "trials": cfg["trials"],
            "checkpoint": cfg["checkpoint"], "target": report["target"],
            "missing_tasks": report.get("missing_tasks", []),
            "speedup": summary["tunable"]["speedup"], "speedup_per_seed": per_seed, "speedup_ci95": interval,
            # The user's view: the network's weighted latency (sum of weight x best over tunable tasks, geomean
            # over seeds) of each baseline over cdmpp's; small tasks count by their time, not one vote each.
            "network_speedup": {b: {base: lat[base] / lat["cdmpp"] if lat.get(base) and lat.get("cdmpp") else None
                                    for base in bases}
                                for b, lat in summary["tunable"]["network_latency_s"].items()},
            "xgb_headroom": headroom,
            "trials_to_match_xgb": summary["tunable"].get("trials_to_match_xgb"),
            "cost_model_share": summary["cost_model_share"]}


def overview_markdown(rows: list[dict], command: str) -> str:
    # xgb (the baseline) first, then random, then cdmpp's variants in the benchmark's order.
    bases = sorted({b for r in rows for b in r["models"] if b != "cdmpp"},
                   key=lambda m: (m != "xgb", m != "random", MODELS.index(m)))
    budgets = sorted({b for r in rows for b in r["budgets"]})
    x = lambda v: "n/a" if v is None else f"{v:.3f}x"  # noqa: E731
    lines = ["# Search benchmark overview", "", f"`{command}`", "",
             "Per network, over its tunable tasks (every run measured the full budget), geometric mean over tasks "
             "and seeds of (baseline's best latency / cdmpp's best latency) within the budget; in brackets the "
             "same per seed; then its 95 % bootstrap interval over the (task, seed) pairs.", ""]
    for base in bases:
        lines += [f"## cdmpp vs {base}", "", "| network | tunable tasks | seeds | "
                  + " | ".join(f"{b} trials" for b in budgets) + " |", "|---|---|---|" + "---|" * len(budgets)]
        for r in rows:
            if base not in r["models"]:
                continue
            cells = []
            for b in budgets:
                if str(b) not in r["speedup"]:
                    cells.append("not run")
                    continue
                seeds = ", ".join(x(v) for v in r["speedup_per_seed"][str(b)][base])
                ci = r["speedup_ci95"][str(b)][base]
                ci_text = f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci else ""
                cells.append(f"{x(r['speedup'][str(b)][base])} ({seeds}){ci_text}")
            lines.append(f"| {r['network']} | {r['n_tunable']} of {r['n_tasks']} | {len(r['seeds'])} | "
                         + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Network latency: baseline's weighted latency / cdmpp's (tunable tasks, weight x best summed, "
              "geomean over seeds)", "", "| network | " + " | ".join(f"vs {base}, {b} trials" for base in bases
                                                                   for b in budgets) + " |",
              "|---|" + "---|" * (len(bases) * len(budgets))]
    lines += [f"| {r['network']} | " + " | ".join(x(r["network_speedup"].get(str(b), {}).get(base)) for base in bases
                                                 for b in budgets) + " |" for r in rows]
    lines += ["", "## Headroom: xgb's best within the budget / the best program any run found for the task", "",
              "Geomean over tunable tasks and seeds: the largest speedup over xgb that the programs found in this "
              "benchmark allow at that budget.", "",
              "| network | " + " | ".join(f"{b} trials" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    lines += [f"| {r['network']} | " + " | ".join(x(r["xgb_headroom"].get(str(b))) for b in budgets) + " |"
              for r in rows if r["xgb_headroom"]]
    lines += ["", "## Trials per task cdmpp needs to reach xgb's weighted latency at xgb's full budget; cost-model share",
              "", "| network | xgb budget | cdmpp trials, per seed | " + " | ".join(
                  f"{m} share" for m in ["cdmpp", *bases]) + " |", "|---|---|---|" + "---|" * (1 + len(bases))]
    for r in rows:
        m = r["trials_to_match_xgb"] or {"xgb_budget": None, "per_seed": []}
        share = r["cost_model_share"]
        lines.append(f"| {r['network']} | {m['xgb_budget']} | "
                     + ", ".join("not reached" if n is None else str(n) for n in m["per_seed"]) + " | "
                     + " | ".join("n/a" if share.get(k) is None else f"{share[k]:.1%}" for k in ["cdmpp", *bases]) + " |")
    partial = [r for r in rows if r["missing_tasks"]]
    if partial:
        lines += ["", "**Partial:** " + "; ".join(f"{r['network']}: {len(r['missing_tasks'])} task(s) not finished by "
                                                  "every model and seed" for r in partial)]
    lines += ["", "Checkpoints: " + "; ".join(f"{r['network']}: `{r['checkpoint']}`" for r in rows),
              "", "Target: " + "; ".join(sorted({f"`{r['target']}`" for r in rows}))]
    return "\n".join(lines) + "\n"


def plot_overview(rows: list[dict], path: Path) -> None:
    budgets = sorted({b for r in rows for b in r["budgets"]})
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(rows), 3.6))
    width = 0.8 / len(budgets)
    for i, b in enumerate(budgets):
        vals = [r["speedup"].get(str(b), {}).get("xgb") or 0.0 for r in rows]
        ax.bar(np.arange(len(rows)) + (i - (len(budgets) - 1) / 2) * width, vals, width, label=f"{b} trials")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(1.25, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(rows)), [r["network"] for r in rows], fontsize=8)
    ax.set_ylabel("cdmpp speedup over xgb\n(geomean, tunable tasks)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure_atomic(path, fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="+", help="bench-search --out directories (each with results.json)")
    p.add_argument("--name", required=True, help="output file stem: <name>-overview.{json,md,png}")
    p.add_argument("--out-dir", default="benchmarks/results")
    args = p.parse_args(argv)
    rows = []
    for d in args.results:
        path = Path(d) / "results.json"
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{path}: not a bench-search results.json ({e})") from e
        if "cdmpp" not in report.get("config", {}).get("models", []):
            raise UserError(f"{path}: no 'cdmpp' runs to compare")
        # Label: the directory's name without the "<name>-" prefix (search-unseen-kws_dscnn -> kws_dscnn).
        label = Path(d).resolve().name
        rows.append(network_overview(report, label.removeprefix(f"{args.name}-")))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = benchmark_command(__file__, argv)
    write_json_atomic(out / f"{args.name}-overview.json", {"command": command, "networks": rows})
    write_text_atomic(out / f"{args.name}-overview.md", overview_markdown(rows, command))
    plot_overview(rows, out / f"{args.name}-overview.png")
    print(f"wrote {out / (args.name + '-overview.md')}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
