"""Search benchmark: best latency found vs measured trials, per cost model (``cdmpp-tvm bench-search``).

Every (model, task, seed) is one independent single-task tuning run with the same trial budget,
evolutionary-search settings, builder (tvm_patches.fast_builder), runner (tuning.default_runner) and
random seed, so the only difference between models is the cost model. Models:

* ``cdmpp``: CDMPPCostModel with a pretrained checkpoint (``checkpoint``; default: the bundled one
  for the target), learning online;
* ``cdmpp-scratch``: the same model, untrained, learning online only;
* ``xgb``: MetaSchedule's default XGBModel (PerStoreFeature);
* ``random``: MetaSchedule's RandomModel (the search is still evolutionary; only scores are random).

Each run writes, in ``<out>/runs/<model>/<task>/seed<k>/``: the MetaSchedule database, ``curve.jsonl``
(one line per measured batch, appended and fsynced as the batch completes: trials so far, best
latency so far, build/run/cost-model seconds) and, when finished, ``result.json``. A run with
``result.json`` is skipped; a killed run resumes from its database (its records are replayed into the
fresh cost model and into the curve), so a kill loses at most the batch in flight.

Wall time split per run: ``build`` (the builder), ``run`` (from handing a batch to the runner to its
results), ``featurize``, ``predict`` (cost-model scoring without featurization), ``update`` (cost-model
training on measured batches) and ``search`` (everything else: evolutionary search, postprocessing,
database, bookkeeping).
"""
from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvm_patches.fast_builder import make_builder

from .atomic_io import atomic_path, write_figure_atomic, write_json_atomic, write_text_atomic
from .cost_model import CDMPPCostModel
from .errors import UserError
from .data.collect import file_name_part, task_dir_name
from .data.reader import RECORD_FILE as RECORD_FILE_NAME, latency_of, read_database
from .tuning import default_runner, tune
from .workloads import Task

logger = logging.getLogger(__name__)

MODELS = ("cdmpp", "cdmpp-scratch", "xgb", "random")
CURVE_FILE = "curve.jsonl"
RESULT_FILE = "result.json"


@dataclass
class SearchBenchConfig:
    models: tuple[str, ...] = ("cdmpp", "cdmpp-scratch", "xgb", "random")
    trials: int = 256  # measured trials per task
    trials_per_iter: int = 32
    population_size: int = 512
    seeds: tuple[int, ...] = (0, 1)
    checkpoint: str | None = None  # for "cdmpp"; None = the bundled checkpoint for the target
    budgets: tuple[int, ...] = (64, 128, 256)  # trials per task at which the summary compares models

    def __post_init__(self):
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise UserError(f"unknown model(s) {unknown}; valid: {', '.join(MODELS)}")
        if self.trials < 1 or self.trials_per_iter < 1:
            raise UserError("trials and trials_per_iter must be >= 1")


# ---------------------------------------------------------------------------------------------------
# Timing wrappers: same builder, runner and cost model, with their time accounted.
@dataclass
class _Clock:
    build: float = 0.0
    run: float = 0.0
    featurize: float = 0.0
    predict: float = 0.0  # including featurization; featurize is subtracted in the report
    update: float = 0.0
    run_started: float | None = None

    def reset(self) -> None:
        self.__init__()


@derived_object
class _TimedBuilder(ms.builder.PyBuilder):
    def __init__(self, inner, clock: _Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def build(self, build_inputs):
        t0 = time.perf_counter()
        try:
            return self.inner.build(build_inputs)
        finally:
            self.clock.build += time.perf_counter() - t0


@derived_object
class _TimedRunner(ms.runner.PyRunner):
    def __init__(self, inner, clock: _Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def run(self, runner_inputs):
        self.clock.run_started = time.perf_counter()
        return self.inner.run(runner_inputs)


@derived_object
class _TimedExtractor(ms.feature_extractor.PyFeatureExtractor):
    def __init__(self, inner, clock: _Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def extract_from(self, context, candidates):
        t0 = time.perf_counter()
        try:
            return self.inner.extract_from(context, candidates)
        finally:
            self.clock.featurize += time.perf_counter() - t0


@derived_object
class _TimedCostModel(ms.cost_model.PyCostModel):
    def __init__(self, inner, clock: _Clock):
        super().__init__()
        self.inner, self.clock = inner, clock

    def load(self, path):
        self.inner.load(path)

    def save(self, path):
        self.inner.save(path)

    def predict(self, context, candidates):
        t0 = time.perf_counter()
        try:
            return self.inner.predict(context, candidates)
        finally:
            self.clock.predict += time.perf_counter() - t0

    def update(self, context, candidates, results):
        t0 = time.perf_counter()
        try:
            self.inner.update(context, candidates, results)
        finally:
            self.clock.update += time.perf_counter() - t0


@derived_object
class _CurveRecorder(ms.measure_callback.PyMeasureCallback):
    """Appends one line per measured batch to curve.jsonl (fsynced), and accounts run time."""

    def __init__(self, path: Path, clock: _Clock, trials: int, best: float | None):
        super().__init__()
        self.path, self.clock, self.trials, self.best = path, clock, trials, best

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        if self.clock.run_started is not None:
            self.clock.run += time.perf_counter() - self.clock.run_started
            self.clock.run_started = None
        valid = [latency_of(r.run_secs) for b, r in zip(builder_results, runner_results)
                 if b.error_msg is None and r.error_msg is None]
        valid = [v for v in valid if v is not None]
        if valid:
            self.best = min(valid) if self.best is None else min(self.best, min(valid))
        self.trials += len(measure_candidates)
        _append_line(self.path, {"trials": self.trials, "best_s": self.best, "n_valid": len(valid),
                                 "clock": {k: v for k, v in asdict(self.clock).items() if k != "run_started"}})


def _append_line(path: Path, obj: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _make_cost_model(model: str, cfg: SearchBenchConfig, seed: int, clock: _Clock):
    if model == "cdmpp":
        inner = CDMPPCostModel(checkpoint=cfg.checkpoint, seed=seed)
    elif model == "cdmpp-scratch":
        inner = CDMPPCostModel(checkpoint="scratch", seed=seed)
    elif model == "xgb":
        inner = ms.cost_model.XGBModel(
            extractor=_TimedExtractor(ms.feature_extractor.PerStoreFeature(), clock), adaptive_training=True)
    else:
        inner = ms.cost_model.RandomModel(seed=seed)
    return inner, _TimedCostModel(inner, clock)


# ---------------------------------------------------------------------------------------------------
def _replay_database(run_dir: Path, task: Task, target, cost_model) -> tuple[list[dict], float | None]:
    """Records measured before a kill: the curve they make, and the cost model trained on them.

    Read in file order, which is measurement order (JSONDatabase's own listing is sorted by latency,
    which would put the best program first and make the replayed curve look better than it was)."""
    if not (run_dir / RECORD_FILE_NAME).exists():
        return [], None
    read = read_database(run_dir)
    for problem in read.problems:  # e.g. a line cut short by the kill
        logger.warning("resuming %s: skipped %s", run_dir, problem)
    records = [m.record for m in read.records]
    if not records:
        return [], None
    context = ms.TuneContext(mod=task.mod, target=target, task_name=task.name)
    candidates = [r.as_measure_candidate() for r in records]
    results = [ms.runner.RunnerResult(run_secs=list(r.run_secs) if r.run_secs else None,
                                      error_msg=None if r.run_secs and latency_of(r.run_secs) else "failed")
               for r in records]
    cost_model.update(context, candidates, results)
    best, curve = None, []
    for i, rec in enumerate(records, 1):
        lat = latency_of(rec.run_secs) if rec.run_secs else None
        if lat is not None:
            best = lat if best is None else min(best, lat)
        curve.append({"trials": i, "best_s": best, "replayed": True})
    return curve, best


def _finished_result(run_dir: Path) -> dict | None:
    """The result of a finished run (its ``result.json``), None if the run has not finished."""
    path = run_dir / RESULT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def run_one(task: Task, target, model: str, seed: int, cfg: SearchBenchConfig, run_dir: Path,
            progress: bool = False) -> dict:
    """One (model, task, seed) tuning run, resumed if it was interrupted; returns its result dict."""
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path = run_dir / RESULT_FILE
    if (finished := _finished_result(run_dir)) is not None:
        return finished
    clock = _Clock()
    inner, cost_model = _make_cost_model(model, cfg, seed, clock)
    replayed, best = _replay_database(run_dir, task, target, cost_model)
    clock.reset()  # replaying an interrupted run's records is not part of the run
    featurize_before = inner.featurizer.seconds if isinstance(inner, CDMPPCostModel) else 0.0
    curve_path = run_dir / CURVE_FILE
    if replayed:
        curve_path.unlink(missing_ok=True)
        for line in replayed:
            _append_line(curve_path, line)
    recorder = _CurveRecorder(curve_path, clock, len(replayed), best)
    remaining = cfg.trials - len(replayed)
    t0 = time.perf_counter()
    if remaining > 0:
        tune([task], target, remaining, str(run_dir), cost_model, trials_per_iter=cfg.trials_per_iter,
             task_scheduler="round-robin", builder=_TimedBuilder(make_builder(), clock),
             runner=_TimedRunner(default_runner(), clock), seed=seed, progress=progress,
             population_size=cfg.population_size, measure_callbacks=[recorder])
    wall = time.perf_counter() - t0
    curve = [json.loads(line) for line in curve_path.read_text().splitlines() if line.strip()] \
        if curve_path.exists() else []
    featurize = clock.featurize + (inner.featurizer.seconds - featurize_before if isinstance(inner, CDMPPCostModel)
                                   else 0.0)
    split = {"build": clock.build, "run": clock.run, "featurize": featurize,
             "predict": max(0.0, clock.predict - featurize), "update": clock.update}
    split["search"] = max(0.0, wall - sum(split.values()))
    result = {"model": model, "task": task.name, "weight": task.weight, "seed": seed, "trials": recorder.trials,
              "best_s": recorder.best, "curve": [(c["trials"], c["best_s"]) for c in curve],
              "wall_s": wall, "time_split_s": split, "resumed_from": len(replayed),
              "cost_model_stats": inner.stats() if isinstance(inner, CDMPPCostModel) else None}
    write_json_atomic(result_path, result)
    return result


def run_benchmark(tasks: list[Task], target, cfg: SearchBenchConfig, out_dir: str | os.PathLike,
                  progress: bool = True, run_missing: bool = True) -> dict:
    """All (model, task, seed) runs, then results.json / results.csv / summary.md / PNG plots in out_dir.

    With ``run_missing=False`` nothing is tuned: the report covers the runs already finished (a long
    benchmark stopped part-way), and only tasks finished by every model and seed enter the summary, so
    the models are always compared on the same tasks; the others are listed as ``missing_tasks``.
    """
    out = Path(out_dir)
    results = []
    order = [(seed, task, model) for seed in cfg.seeds for task in tasks for model in cfg.models]
    for i, (seed, task, model) in enumerate(order, 1):
        run_dir = out / "runs" / model / task_dir_name(task) / f"seed{seed}"
        if run_missing:
            logger.info("[%d/%d] %s on %s, seed %d", i, len(order), model, task.name, seed)
            results.append(run_one(task, target, model, seed, cfg, run_dir, progress=progress))
        elif (finished := _finished_result(run_dir)) is not None:
            results.append(finished)
    done = {(r["model"], r["task"], r["seed"]) for r in results}
    complete = [t for t in tasks if all((m, t.name, s) in done for m in cfg.models for s in cfg.seeds)]
    if len(complete) < len(tasks):
        logger.warning("report on %d of %d tasks: the others are not finished by every model and seed",
                       len(complete), len(tasks))
    names = {t.name for t in complete}
    results = [r for r in results if r["task"] in names]
    report = {"config": asdict(cfg), "target": str(target), "tasks": [t.name for t in complete],
              "missing_tasks": [t.name for t in tasks if t.name not in names],
              "runs": results, "summary": summarize(results, complete, cfg)}
    write_json_atomic(out / "results.json", report)
    _write_csv(out / "results.csv", results)
    write_text_atomic(out / "summary.md", summary_markdown(report))
    plot_curves(report, out)
    return report


# ---------------------------------------------------------------------------------------------------
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


def _geomean(xs: list[float]) -> float | None:
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
        row[base] = _geomean(ratios)
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
        best = {m: {str(b): _geomean([best_at(by[(m, t.name, s)]["curve"], b) for s in cfg.seeds
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
            m: _geomean([_weighted_best_at(by, m, weights, s, budget) for s in cfg.seeds]) for m in cfg.models}
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
                f"({len(report['missing_tasks'])}): {', '.join(report['missing_tasks'])}."]
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


def plot_curves(report: dict, out: Path) -> list[Path]:
    """One PNG per task and one for the weighted total: best latency vs trials, mean with min-max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = report["config"]
    by = _by(report["runs"])
    grid = np.unique(np.concatenate([[n for n, _ in r["curve"]] for r in report["runs"]] + [[cfg["trials"]]]))
    tasks = report["tasks"]
    weights = {r["task"]: r["weight"] for r in report["runs"]}
    written = []
    for name in tasks + ["__total__"]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m in cfg["models"]:
            ys = []
            for seed in cfg["seeds"]:
                if name == "__total__":
                    vals = [_weighted_best_at(by, m, weights, seed, n) for n in grid]
                else:
                    r = by.get((m, name, seed))
                    vals = [best_at(r["curve"], n) if r else None for n in grid]
                ys.append([np.nan if v is None else v * 1e3 for v in vals])
            ys = np.asarray(ys, dtype=float)
            if np.all(np.isnan(ys)):
                continue
            mean = np.nanmean(ys, axis=0)
            ax.plot(grid, mean, label=m)
            ax.fill_between(grid, np.nanmin(ys, axis=0), np.nanmax(ys, axis=0), alpha=0.2)
        ax.set_xlabel("measured trials" + (" per task" if name == "__total__" else ""))
        ax.set_ylabel("weighted latency sum (ms)" if name == "__total__" else "best latency (ms)")
        ax.set_title("all tasks (weighted)" if name == "__total__" else name[:60], fontsize=9)
        ax.set_yscale("log")
        ax.legend()
        fig.tight_layout()
        path = out / ("search_total.png" if name == "__total__" else f"search_{_safe(name)}.png")
        write_figure_atomic(path, fig, dpi=110)
        written.append(path)
    return written


def _safe(name: str) -> str:
    """A file-name part for a task; long names are cut and get a hash of the whole name, since fused
    tasks often share their first 80 characters (ResNet-18 has two such pairs)."""
    safe = file_name_part(name)
    return safe if len(safe) <= 80 else f"{safe[:71]}-{hashlib.sha1(name.encode()).hexdigest()[:8]}"
