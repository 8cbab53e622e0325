"""Search benchmark runs: one resumable single-task tuning run per (model, task, seed), timed.

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

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvm_patches.fast_builder import make_builder

from ..atomic_io import write_json_atomic
from ..cost_model import CDMPPCostModel
from ..data.layout import RECORD_FILE as RECORD_FILE_NAME, task_dir_name
from ..data.reader import latency_of, read_database
from ..tuning import default_runner, tune
from ..workloads import Task
from .config import EXPLORE_SCALE, SHARP_SCORE_EXPONENT, SearchBenchConfig
from .plots import plot_curves
from .report import summarize, write_report

logger = logging.getLogger(__name__)

CURVE_FILE = "curve.jsonl"
RESULT_FILE = "result.json"


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
    elif model == "cdmpp-sharp":
        inner = CDMPPCostModel(checkpoint=cfg.checkpoint, seed=seed, score_exponent=SHARP_SCORE_EXPONENT)
    elif model == "cdmpp-explore":
        inner = CDMPPCostModel(checkpoint=cfg.checkpoint, seed=seed, explore=EXPLORE_SCALE, explore_by="residual")
    elif model == "cdmpp-explore-ranking":
        inner = CDMPPCostModel(checkpoint=cfg.checkpoint, seed=seed, explore=EXPLORE_SCALE, explore_by="ranking")
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
    the models are always compared on the same tasks; the others are listed as ``missing_tasks``, and
    their finished runs are kept in results.json as ``runs_of_missing_tasks`` (in no statistic), so that
    the report holds every measured run and a run directory can be restored from it.
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
    unpaired = [r for r in results if r["task"] not in names]
    results = [r for r in results if r["task"] in names]
    report = {"config": asdict(cfg), "target": str(target), "tasks": [t.name for t in complete],
              "missing_tasks": [t.name for t in tasks if t.name not in names],
              "runs": results, "summary": summarize(results, complete, cfg), "runs_of_missing_tasks": unpaired}
    write_report(report, out)
    plot_curves(report, out)
    return report
