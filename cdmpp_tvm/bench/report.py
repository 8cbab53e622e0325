"""Search benchmark report: statistics over finished runs (best latency within a budget, speedups,
weighted latency, trials to reach xgb, tunable tasks, cost-model share of wall time) and the files
that hold them: results.json, results.csv, summary.md."""
from __future__ import annotations

import csv
import math
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from ..atomic_io import atomic_path, write_json_atomic, write_text_atomic
from ..workloads import Task
from .config import SearchBenchConfig


def benchmark_command(script: str, argv: list[str] | None) -> str:
    """The command line that ran a benchmark script (``argv``: its arguments; None = this process's)."""
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(script), *(argv or sys.argv[1:])])


def best_at(curve: list, trials: int) -> float | None:
    """Best latency found within the first ``trials`` measured trials (None if none valid yet)."""
    best = None
    for n, b in curve:
        if n > trials:
            break
        best = b if b is not None else best
    return best


def _by(results: list[dict]) -> dict:
    return {(r["model"], r["task"], r["seed"]): r for r in results}


def _weighted_best_at(by: dict, model: str, weights: dict[str, float], seed: int, trials: int) -> float | None:
    """Sum over tasks of weight x best latency within ``trials`` trials per task; None until every task has one."""
    if not weights:
        return None
    total = 0.0
    for name, weight in weights.items():
        r = by.get((model, name, seed))
        b = best_at(r["curve"], trials) if r else None
        if b is None:
            return None
        total += weight * b
    return total


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and x > 0]
    return float(math.exp(np.mean(np.log(xs)))) if xs else None


def _speedups(by: dict, tasks: list[Task], cfg: SearchBenchConfig, budget: int) -> dict[str, float | None]:
    """Geomean over ``tasks`` and seeds of (baseline best / cdmpp best) within ``budget`` trials, per baseline."""
    row = {}
    for base in [m for m in cfg.models if m != "cdmpp"]:
        ratios = []
        for seed in cfg.seeds:
            for t in tasks:
                a, b = by.get(("cdmpp", t.name, seed)), by.get((base, t.name, seed))
                if a and b:
                    ca, cb = best_at(a["curve"], budget), best_at(b["curve"], budget)
                    if ca and cb:
                        ratios.append(cb / ca)
        row[base] = geomean(ratios)
    return row


def _trials_to_reach(curve: list, target_s: float | None) -> int | None:
    """First trial count at which ``curve``'s best latency is <= ``target_s`` (None if never)."""
    if target_s is None:
        return None
    return next((n for n, b in curve if b is not None and b <= target_s), None)


def _per_task(by: dict, tasks: list[Task], cfg: SearchBenchConfig) -> list[dict]:
    """Per task: best latency per model and budget (geomean over seeds), whether its design space has
    more distinct programs than the trial budget (``tunable``: every run measured the full budget; a
    run stops early once the search finds nothing new), and the trials cdmpp needs to reach xgb's
    best at the largest budget (per seed)."""
    top = max(cfg.budgets)
    rows = []
    for t in tasks:
        runs = [r for r in (by.get((m, t.name, s)) for m in cfg.models for s in cfg.seeds) if r]
        best = {m: {str(b): geomean([best_at(by[(m, t.name, s)]["curve"], b) for s in cfg.seeds
                                      if (m, t.name, s) in by]) for b in cfg.budgets} for m in cfg.models}
        to_match = None
        if "cdmpp" in cfg.models and "xgb" in cfg.models:
            to_match = [_trials_to_reach(by[("cdmpp", t.name, s)]["curve"], best_at(by[("xgb", t.name, s)]["curve"], top))
                        if ("cdmpp", t.name, s) in by and ("xgb", t.name, s) in by else None for s in cfg.seeds]
        rows.append({"task": t.name, "weight": t.weight, "tunable": bool(runs) and all(r["trials"] >= cfg.trials for r in runs),
                     "best_s": best, "cdmpp_trials_to_match_xgb": to_match})
    return rows


def _comparison(by: dict, tasks: list[Task], cfg: SearchBenchConfig) -> dict:
    """Over ``tasks``, per budget: geomean over tasks and seeds of (baseline best / cdmpp best) for each
    baseline, and each model's weighted latency sum (geomean over seeds); the trials per task cdmpp needs
    to reach xgb's weighted latency at the largest budget (per seed)."""
    weights = {t.name: t.weight for t in tasks}
    out: dict = {"speedup": {}, "network_latency_s": {}, "trials_to_match_xgb": None}
    for budget in cfg.budgets:
        out["speedup"][str(budget)] = _speedups(by, tasks, cfg, budget)
        out["network_latency_s"][str(budget)] = {
            m: geomean([_weighted_best_at(by, m, weights, s, budget) for s in cfg.seeds]) for m in cfg.models}
    if "cdmpp" in cfg.models and "xgb" in cfg.models:
        top = max(cfg.budgets)
        needed = []
        for seed in cfg.seeds:
            target_lat = _weighted_best_at(by, "xgb", weights, seed, top)
            curve_points = sorted({n for t in tasks for n, _ in (by.get(("cdmpp", t.name, seed)) or {"curve": []})["curve"]})
            reached = next((n for n in curve_points
                            if target_lat is not None and (v := _weighted_best_at(by, "cdmpp", weights, seed, n)) is not None
                            and v <= target_lat), None)
            needed.append(reached)
        out["trials_to_match_xgb"] = {"xgb_budget": top, "per_seed": needed}
    return out


def summarize(results: list[dict], tasks: list[Task], cfg: SearchBenchConfig) -> dict:
    """``_comparison`` over all tasks (top-level keys) and over the tunable ones (``tunable``: tasks whose
    every run measured the full budget; the others have so few distinct programs that the models can
    only differ by measurement noise); cost-model share of wall time; the per-task rows (``_per_task``)."""
    by = _by(results)
    per_task = _per_task(by, tasks, cfg)
    tunable = [t for t, row in zip(tasks, per_task) if row["tunable"]]
    summary = {**_comparison(by, tasks, cfg), "tunable": {"n_tasks": len(tunable), **_comparison(by, tunable, cfg)},
               "cost_model_share": {}, "per_task": per_task}
    for m in cfg.models:
        runs = [r for r in results if r["model"] == m]
        wall = sum(r["wall_s"] for r in runs)
        cm = sum(r["time_split_s"][k] for r in runs for k in ("featurize", "predict", "update"))
        summary["cost_model_share"][m] = cm / wall if wall > 0 else None
    return summary


def summary_markdown(report: dict) -> str:
    s, cfg = report["summary"], report["config"]
    lines = [f"# Search benchmark: {', '.join(report['tasks'][:6])}{' ...' if len(report['tasks']) > 6 else ''}",
             "", f"Target `{report['target']}`; models {', '.join(cfg['models'])}; seeds {cfg['seeds']}; "
             f"{cfg['trials']} trials per task, {cfg['trials_per_iter']} per batch, population {cfg['population_size']}.",
             *(["", f"**Partial:** {len(report['tasks'])} tasks finished by every model and seed; not yet run "
                f"({len(report['missing_tasks'])}): {', '.join(report['missing_tasks'])}; their "
                f"{len(report.get('runs_of_missing_tasks', []))} finished run(s) are in results.json "
                "(`runs_of_missing_tasks`), in no statistic."]
               if report.get("missing_tasks") else []),
             "", "## Geometric-mean speedup of cdmpp's best latency over each baseline (per task, all seeds)", "",
             f"All {len(report['tasks'])} tasks, and the {s['tunable']['n_tasks']} tunable ones (every run measured "
             "the full budget; the others have fewer distinct programs than that, so the models can only differ "
             "there by measurement noise).", ""]
    bases = list(next(iter(s["speedup"].values()), {}))
    lines += ["| trials/task | " + " | ".join(f"vs {b} (all) | vs {b} (tunable)" for b in bases) + " |",
              "|---|" + "---|---|" * len(bases)]
    for budget, row in s["speedup"].items():
        tun = s["tunable"]["speedup"][budget]
        lines.append(f"| {budget} | " + " | ".join(f"{_x(row[b])} | {_x(tun[b])}" for b in bases) + " |")
    lines += ["", "## Weighted latency sum (ms; geomean over seeds): all tasks | tunable tasks", "",
              "| trials/task | " + " | ".join(f"{m} (all) | {m} (tunable)" for m in cfg["models"]) + " |",
              "|---|" + "---|---|" * len(cfg["models"])]
    for budget, row in s["network_latency_s"].items():
        tun = s["tunable"]["network_latency_s"][budget]
        lines.append(f"| {budget} | " + " | ".join(f"{_ms(row[m])} | {_ms(tun[m])}" for m in cfg["models"]) + " |")
    for label, part in (("all tasks", s), ("tunable tasks", s["tunable"])):
        if part.get("trials_to_match_xgb"):
            m = part["trials_to_match_xgb"]
            lines += ["", f"Trials per task cdmpp needs to reach xgb's {m['xgb_budget']}-trial weighted latency ({label}), "
                      "per seed: " + _trials_text(m["per_seed"])]
    lines += ["", "## Cost model share of tuning wall time", "", "| model | share |", "|---|---|"]
    lines += [f"| {m} | {'n/a' if v is None else f'{v:.1%}'} |" for m, v in s["cost_model_share"].items()]
    lines += ["", "## Wall time split (s, all runs)", "", "| model | build | run | featurize | predict | update | search |",
              "|---|---|---|---|---|---|---|"]
    for m in cfg["models"]:
        runs = [r for r in report["runs"] if r["model"] == m]
        lines.append(f"| {m} | " + " | ".join(f"{sum(r['time_split_s'][k] for r in runs):.0f}"
                                             for k in ("build", "run", "featurize", "predict", "update", "search")) + " |")
    if s.get("per_task"):
        top = str(max(cfg["budgets"]))
        lines += ["", f"## Per task: best latency (ms) at {top} trials; speedup of cdmpp at "
                  + ", ".join(str(b) for b in cfg["budgets"]) + " trials", "",
                  "| task | weight | tunable | " + " | ".join(cfg["models"]) + " | "
                  + " | ".join(f"vs {b}" for b in bases) + " | cdmpp trials to reach xgb's best |",
                  "|---|---|---|" + "---|" * (len(cfg["models"]) + len(bases) + 1)]
        for row in s["per_task"]:
            best = row["best_s"]
            ratios = [" / ".join(_x(None if not (best[b][k] and best["cdmpp"][k]) else best[b][k] / best["cdmpp"][k])
                                 for k in best["cdmpp"]) for b in bases]
            match = row["cdmpp_trials_to_match_xgb"]
            lines.append(f"| {row['task']} | {row['weight']:g} | {'yes' if row['tunable'] else 'no'} | "
                         + " | ".join(_ms(best[m][top]) for m in cfg["models"])
                         + " | " + " | ".join(ratios) + " | "
                         + ("n/a" if match is None else _trials_text(match))
                         + " |")
    return "\n".join(lines) + "\n"


def _x(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}x"


def _trials_text(per_seed: list[int | None]) -> str:
    return ", ".join("not reached" if n is None else str(n) for n in per_seed)


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1e3:.4f}"


def _write_csv(path: Path, results: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "task", "seed", "trials", "best_latency_s"])
        for r in results:
            for n, b in r["curve"]:
                w.writerow([r["model"], r["task"], r["seed"], n, "" if b is None else b])


def write_report(report: dict, out: Path) -> None:
    """results.json (the whole report), results.csv (every curve point of every run) and summary.md in ``out``."""
    write_json_atomic(out / "results.json", report)
    _write_csv(out / "results.csv", report["runs"])
    write_text_atomic(out / "summary.md", summary_markdown(report))
