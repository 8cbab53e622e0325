"""Collect real measurements: ``cdmpp-tvm collect``.

For each task of a workload suite, measure ``random_trials`` programs drawn uniformly from the design
space (ReplayTrace: slow and average programs) and then ``evolutionary_trials`` programs found by
evolutionary search (MetaSchedule's XGB cost model, trained on the task's random programs first:
near-optimal programs), like TenSet. Output, in ``out_dir``:

* one standard MetaSchedule JSON database per task, ``<task>/database_{workload,tuning_record}.json``,
  plus ``<task>/task.json`` (name, network tags, weights, status, counts);
* ``manifest.json``: device, CPU model or GPU name, target JSON (with ``mcpu``), TVM version,
  measurement settings, builder, date, load average, and valid / build-failed / run-failed counts;
  ``runs``: one entry per ``collect`` run (start, end, seconds, tasks finished, valid records gained,
  load average), updated after every task so that a killed run keeps its time window.
  ``cdmpp-tvm data-card DIR`` turns a manifest into the tables of ``data/README.md``.

Order: tasks are measured round-robin across their sources (first tag; sources with a single task, such
as operators, share one turn), so an interrupted or partial collection still covers every network.

Skipped, never measured (listed in the manifest's ``skipped`` with the reason, and logged):
* with ``skip_workloads``: tasks whose workload is already measured elsewhere (``measured_workloads`` of
  other collections), so that collecting a suite on a new device buys new tasks, not the same first ones;
* with ``skip_single_program``: tasks whose design space is a single program (no sampling decision in
  any design-space trace: reshape, transpose, take, ...). Measured, they give one latency 32 times and
  nothing to rank.

Resumable: a finished task is skipped, an interrupted phase continues with its remaining trials.
Interruptible: MetaSchedule appends each measured batch to the database as it completes, so a kill
loses at most the batch in flight. Build and run errors are counted, never fatal.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import tvm
from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex

from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics

from ..atomic_io import write_json_atomic
from ..workloads import Task
from .database_files import repair_torn_database
from .layout import RECORD_FILE, TASK_FILE, count_lines, database_lines, task_dir_name, trace_key
from .manifest import finish_run, open_manifest, record_task
from .measure import CollectConfig, RPCSettings, collect_builder, collect_runner, reap_workers_on_sigterm
from .reader import find_databases, latency_of, workload_hashes

logger = logging.getLogger(__name__)


@derived_object
class _CountResults(ms.measure_callback.PyMeasureCallback):
    """Counts valid, build-failed and run-failed measurements, advances the progress bar, and ends a
    task early (``stop_reason`` set, then an exception that unwinds MetaSchedule's loop) when
    measuring more of it would only burn machine time:

    * ``"unmeasurable"``: the first ``give_up_after_failed`` programs all failed (e.g. a gather/take
      whose random index inputs are out of bounds: every program crashes the same way);
    * ``"design_space_exhausted"``: the first batch holds at most 1/8 distinct programs (injective
      tasks such as a transpose have a single schedule; ReplayTrace would measure it 64 times and the
      evolutionary search then spends minutes failing to find a new one).
    """

    def __init__(self, bar: tqdm | None, give_up_after_failed: int | None = None, check_exhausted: bool = False,
                 state: dict | None = None, state_path: Path | None = None):
        super().__init__()
        self.bar = bar
        # The task's task.json state: its failure counts are advanced and written after every batch, so a
        # killed run loses at most the batch in flight.
        self.state, self.state_path = state, state_path
        self.give_up_after_failed = give_up_after_failed
        self.check_exhausted = check_exhausted
        self.valid = self.build_failed = self.run_failed = self.batches = 0
        self.first_error: str | None = None
        self.stop_reason: tuple[str, str] | None = None  # (kind, message)

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        batch = {"valid": 0, "build_failed": 0, "run_failed": 0}
        for b, r in zip(builder_results, runner_results):
            if b.error_msg is not None:
                batch["build_failed"] += 1
            elif r.error_msg is not None or not r.run_secs:
                batch["run_failed"] += 1
            else:
                batch["valid"] += 1
                continue
            self.first_error = self.first_error or str(b.error_msg or r.error_msg or "no run_secs")[-600:]
        self.valid += batch["valid"]
        self.build_failed += batch["build_failed"]
        self.run_failed += batch["run_failed"]
        if self.state is not None:
            for key, n in batch.items():
                self.state[key] = self.state.get(key, 0) + n
            if self.first_error and "first_error" not in self.state:
                self.state["first_error"] = self.first_error
            write_json_atomic(self.state_path, self.state)
        if self.bar is not None:
            self.bar.update(len(measure_candidates))
        self.batches += 1
        failed = self.build_failed + self.run_failed
        if self.give_up_after_failed and self.valid == 0 and failed >= self.give_up_after_failed:
            self.stop_reason = ("unmeasurable", f"the first {failed} programs all failed: {self.first_error}")
        elif self.check_exhausted and self.batches == 1 and len(measure_candidates) >= 8:
            distinct = len({str(c.sch.trace) for c in measure_candidates})
            if distinct <= len(measure_candidates) // 8:
                self.stop_reason = ("design_space_exhausted", f"{distinct} distinct program(s) among the first "
                                    f"{len(measure_candidates)} random samples")
        if self.stop_reason:
            raise RuntimeError(f"stopping the task: {self.stop_reason[0]}: {self.stop_reason[1]}")


def interleave_by_source(tasks: list[Task]) -> list[Task]:
    """Round-robin over the tasks' first tags, keeping each source's own order.

    Sources that contribute a single task (operators, single files) are pooled into one group, so
    fifty operators do not each take a turn before the second task of any network.
    """
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(task.tags[0] if task.tags else "", []).append(task)
    singles = [g[0] for g in groups.values() if len(g) == 1]
    queues = [g for g in groups.values() if len(g) > 1] + ([singles] if singles else [])
    ordered: list[Task] = []
    for i in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[i] for q in queues if i < len(q))
    return ordered


def _exhausted_design_space(record_file: Path) -> str | None:
    """A message when at most 1/8 of the measured programs are distinct (the design space is one or a
    few programs), else None."""
    traces = [trace_key(rec) for _, rec in database_lines(record_file)]
    if len(traces) >= 8 and len(set(traces)) <= len(traces) // 8:
        return f"{len(set(traces))} distinct program(s) among {len(traces)} random samples"
    return None


def measured_workloads(roots: list[str | os.PathLike]) -> set[str]:
    """Workload hashes (``shash2hex``) of the databases under ``roots`` that hold at least one record
    (their ``task.json`` says so; a database without one, e.g. the bootstrap set, by its workload file)."""
    out = set()
    for d in find_databases(roots):
        if (d / TASK_FILE).exists():
            info = json.loads((d / TASK_FILE).read_text())
            if info.get("valid", 0) > 0:
                out.add(info["workload"])
        elif count_lines(d / RECORD_FILE) > 0:
            out.update(workload_hashes(d))
    return out


def is_single_program(task: Task, target: tvm.target.Target) -> bool:
    """True when every design space of ``task`` is one program: its traces make no sampling decision."""
    ctx = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply", task_name=task.name,
                         num_threads="physical")
    return all(len(sch.trace.decisions) == 0 for sch in ctx.space_generator.generate_design_space(task.mod))


def collect(tasks: list[Task], target: tvm.target.Target, out_dir: str | os.PathLike, cfg: CollectConfig,
            rpc: RPCSettings | None = None, progress: bool = True, skip_workloads: set[str] = frozenset(),
            skip_single_program: bool = False) -> dict:
    """Measure every task (resuming where a previous run stopped) and return the manifest; tasks whose
    workload is in ``skip_workloads`` and, with ``skip_single_program``, single-program tasks are skipped
    (see the module docstring)."""
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    out = Path(out_dir)
    manifest_path, manifest = open_manifest(out, target, cfg, rpc)
    builder, runner = collect_builder(cfg), collect_runner(cfg, rpc)
    per_task = cfg.random_trials + cfg.evolutionary_trials
    todo = [t for t in interleave_by_source(tasks) if manifest["tasks"].get(task_dir_name(t), {}).get("status") != "done"]
    todo = _without_skipped(todo, target, out, manifest, skip_workloads, skip_single_program)
    write_json_atomic(manifest_path, manifest)
    with reap_workers_on_sigterm("collect"), \
            tqdm(total=per_task * len(todo), desc="measured", unit="trial", disable=not progress) as bar:
        for task in todo:
            state = _collect_task(task, target, out, cfg, builder, runner, bar)
            record_task(manifest_path, manifest, task_dir_name(task), state)
    return finish_run(manifest_path, manifest)


def _without_skipped(todo: list[Task], target, out: Path, manifest: dict, skip_workloads: set[str],
                     skip_single_program: bool) -> list[Task]:
    """``todo`` less the tasks this run skips, listed with their reasons in ``manifest["skipped"]``
    (this run's list: a later run without the options measures them). A task that already has a
    directory is never skipped: it was started on purpose."""
    before = manifest.get("skipped", {})
    skipped, keep = {}, []
    for task in todo:
        name, workload = task_dir_name(task), shash2hex(task.mod)
        reason = None
        if not (out / name).exists():
            if workload in skip_workloads:
                reason = "measured_elsewhere"
            elif skip_single_program and (before.get(name, {}).get("single_program")
                                          or is_single_program(task, target)):
                reason = "single_program"
        if reason is None:
            keep.append(task)
        else:
            skipped[name] = {"name": task.name, "tags": list(task.tags), "workload": workload, "reason": reason}
            if reason == "single_program":  # a fact of the task: the next run need not build its design space
                skipped[name]["single_program"] = True
    manifest["skipped"] = skipped
    if skipped:
        reasons = [v["reason"] for v in skipped.values()]
        logger.warning("skipping %d of %d task(s): %s", len(skipped), len(todo),
                       ", ".join(f"{reasons.count(r)} {r}" for r in sorted(set(reasons))))
    return keep


def _collect_task(task: Task, target, out: Path, cfg: CollectConfig, builder, runner, bar) -> dict:
    work = out / task_dir_name(task)
    work.mkdir(exist_ok=True)
    task_path = work / TASK_FILE
    state = json.loads(task_path.read_text()) if task_path.exists() else {
        "name": task.name, "tags": list(task.tags), "weights": task.weights, "weight": task.weight,
        "workload": shash2hex(task.mod), "phases": {}, "valid": 0, "build_failed": 0, "run_failed": 0,
        "seconds": 0.0}
    repair_torn_database(work)
    database = ms.database.JSONDatabase(work_dir=str(work))
    for phase, trials, strategy, cost_model in (
            ("random", cfg.random_trials, ms.search_strategy.ReplayTrace(), "random"),
            ("evolutionary", cfg.evolutionary_trials,
             ms.search_strategy.EvolutionarySearch(population_size=cfg.population_size), "xgb")):
        resumed = phase in state["phases"]
        ph = state["phases"].setdefault(phase, {"records_at_start": count_lines(work / RECORD_FILE), "done": False})
        if ph["done"] or trials == 0:
            continue
        if phase == "evolutionary" and (exhausted := _exhausted_design_space(work / RECORD_FILE)):
            # Also catches a task whose random phase finished before the in-batch check existed, or was resumed.
            state["stopped_early"] = {"reason": "design_space_exhausted", "detail": exhausted}
            break
        remaining = trials - (count_lines(work / RECORD_FILE) - ph["records_at_start"])
        # A resumed phase draws from another random stream: with the first one's seed, ReplayTrace would
        # sample the programs the killed run already measured again. (Phases without "attempts" were
        # started by an older cdmpp-tvm: resumed means one attempt ran.)
        ph["attempts"] = ph.get("attempts", 1 if resumed else 0) + 1
        write_json_atomic(task_path, state)
        if remaining > 0:
            counter = _CountResults(bar, give_up_after_failed=cfg.give_up_after_failed if phase == "random" else None,
                                    check_exhausted=phase == "random", state=state, state_path=task_path)
            t0 = time.time()
            ctx = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply",
                                 search_strategy=strategy, task_name=task.name,
                                 rand_state=phase_seed(cfg.seed, phase, ph["attempts"]), num_threads="physical")
            if phase == "evolutionary" and cfg.warm_start_xgb:
                cost_model, ph["xgb_warm_start_programs"] = warm_started_xgb(ctx, database)
            callbacks = list(ms.measure_callback.MeasureCallback.create("default")) + [counter]
            try:
                ms.tune_tasks(tasks=[ctx], task_weights=[1.0], work_dir=str(work), max_trials_global=remaining,
                              num_trials_per_iter=min(cfg.trials_per_iter, remaining), builder=builder, runner=runner,
                              database=database, cost_model=cost_model, measure_callbacks=callbacks,
                              task_scheduler="round-robin")
            except Exception as e:  # noqa: BLE001 - one task's failure must not stop the collection
                if counter.stop_reason:  # raised on purpose by the callback, see _CountResults
                    state["stopped_early"] = {"reason": counter.stop_reason[0], "detail": counter.stop_reason[1]}
                    logger.warning("task %s: stopped early (%s): %s", task.name, *counter.stop_reason)
                else:
                    logger.error("task %s, phase %s failed: %s: %s", task.name, phase, type(e).__name__, e)
                    state.setdefault("errors", []).append(f"{phase}: {type(e).__name__}: {e}"[:1000])
            state["seconds"] += time.time() - t0
        ph["done"] = True
        _count_from_database(state, work)
        write_json_atomic(task_path, state)
        if state.get("stopped_early"):
            break
    _count_from_database(state, work)
    state["status"] = "done"
    write_json_atomic(task_path, state)
    return state


def warm_started_xgb(ctx: ms.TuneContext, database: ms.database.Database) -> tuple[ms.cost_model.XGBModel, int]:
    """MetaSchedule's XGBModel trained on every program of ``ctx``'s task in ``database`` (failed runs
    included, as MetaSchedule's own update would pass them), predicting from the first search round on
    (``num_warmup_samples=0``); -> (model, number of programs it was trained on)."""
    model = ms.cost_model.XGBModel(num_warmup_samples=0)
    records = database.get_top_k(database.commit_workload(ctx.mod), 1 << 30)
    if records:
        model.update(ctx, [r.as_measure_candidate() for r in records],
                     [ms.runner.RunnerResult([float(s) for s in r.run_secs], None) for r in records])
    return model, len(records)


def phase_seed(seed: int, phase: str, attempt: int) -> int:
    """rand_state of a collection phase: the first attempt keeps the seed of earlier cdmpp-tvm versions
    (seed, seed + 1), every resumed attempt gets a stream of its own."""
    return seed + (0 if phase == "random" else 1) + 7919 * (attempt - 1)


def _count_from_database(state: dict, work: Path) -> None:
    """``records`` and ``valid`` from the database itself (a kill can land between MetaSchedule's commit
    of a batch and any counter); build and run failures, which the database does not tell apart, stay
    as _CountResults counted them batch by batch."""
    lines = database_lines(work / RECORD_FILE)
    state["records"] = len(lines)
    state["valid"] = sum(1 for _, rec in lines if latency_of(rec[1]) is not None)
