"""Tune a list of tasks with MetaSchedule: the main job behind ``cdmpp-tvm tune``.

One function, ``tune``, so the CLI, the benchmarks and the tests run tuning the same way: the fast
builder, a LocalRunner (or RPC runner) with explicit measurement settings, a JSON database in the work
directory, a progress bar over measured trials, and the best latency per task afterwards.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import tvm
from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms

from tvm_patches.fast_builder import make_builder
from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics

from .data.database_files import repair_torn_database
from .data.reader import latency_of
from .workloads import Task

logger = logging.getLogger(__name__)


@dataclass
class TaskResult:
    name: str
    weight: float
    best_latency_s: float | None  # None when no valid measurement was found
    trials: int


@dataclass
class TuneResult:
    tasks: list[TaskResult]
    work_dir: str
    database_dir: str

    @property
    def weighted_latency_s(self) -> float | None:
        """Sum over tasks of weight x best latency (the network's estimated latency); None if any task has none."""
        if any(t.best_latency_s is None for t in self.tasks):
            return None
        return float(sum(t.weight * t.best_latency_s for t in self.tasks))


def default_runner(timeout_sec: float = 30.0) -> ms.runner.LocalRunner:
    """LocalRunner reporting the median-able 3 repeats of >= 20 ms each (one candidate costs ~0.1 s)."""
    return ms.runner.LocalRunner(timeout_sec=timeout_sec, evaluator_config=ms.runner.EvaluatorConfig(
        number=1, repeat=3, min_repeat_ms=20, enable_cpu_cache_flush=False))


@derived_object
class _TrialProgress(ms.measure_callback.PyMeasureCallback):
    """Advances a tqdm bar by the number of candidates measured in each batch."""

    def __init__(self, bar: tqdm):
        super().__init__()
        self.bar = bar

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        self.bar.update(len(measure_candidates))


def tune(tasks: list[Task], target: tvm.target.Target, trials: int, work_dir: str, cost_model,
         trials_per_iter: int = 32, task_scheduler: str = "gradient", builder=None, runner=None,
         seed: int = 0, progress: bool = True, num_threads: int | str = "physical",
         population_size: int = 512, measure_callbacks: list | None = None) -> TuneResult:
    """Tune ``tasks`` for ``trials`` measured candidates in total (``max_trials_global``).

    ``population_size`` is the evolutionary search's population (MetaSchedule's default 512; every
    search round scores 5 x that many candidates, so tiny test runs use less).
    ``measure_callbacks`` run after each measured batch, before MetaSchedule's default ones (which add
    the batch to the database and update the cost model)."""
    if not tasks:
        raise ValueError("tune: no tasks to tune")
    if trials < 1:
        raise ValueError(f"tune: trials must be >= 1, got {trials}")
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    os.makedirs(work_dir, exist_ok=True)  # JSONDatabase does not create its directory
    names = [t.name for t in tasks]
    contexts = [
        ms.TuneContext(mod=t.mod, target=target, space_generator="post-order-apply",
                       search_strategy=ms.search_strategy.EvolutionarySearch(population_size=population_size),
                       task_name=t.name, logger=lg, rand_state=rs, num_threads=num_threads).clone()
        for t, lg, rs in zip(tasks, ms.logging.get_loggers_from_work_dir(work_dir, names),
                             ms.utils.fork_seed(seed, n=len(tasks)))
    ]
    repair_torn_database(work_dir)  # resuming a killed run: TVM's loader fails on a torn last line
    database = ms.database.JSONDatabase(work_dir=work_dir)
    with tqdm(total=trials, desc="trials", unit="trial", disable=not progress) as bar:
        callbacks = list(measure_callbacks or []) + list(ms.measure_callback.MeasureCallback.create("default")) \
            + [_TrialProgress(bar)]
        ms.tune_tasks(tasks=contexts, task_weights=[t.weight for t in tasks], work_dir=work_dir,
                      max_trials_global=trials, num_trials_per_iter=trials_per_iter,
                      builder=builder or make_builder(), runner=runner or default_runner(), database=database,
                      cost_model=cost_model, measure_callbacks=callbacks, task_scheduler=task_scheduler)
    results = []
    for t in tasks:
        records = database.get_top_k(database.commit_workload(t.mod), 1)
        all_records = _count_records(database, t.mod)
        best = latency_of(records[0].run_secs) if records else None
        results.append(TaskResult(t.name, t.weight, best, all_records))
    return TuneResult(results, work_dir, work_dir)


def _count_records(database, mod) -> int:
    workload = database.commit_workload(mod)
    return len(database.get_top_k(workload, 1 << 30))
