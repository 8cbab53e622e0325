"""Collect real measurements: ``cdmpp-tvm collect``.

For each task of a workload suite, measure ``random_trials`` programs drawn uniformly from the design
space (ReplayTrace: slow and average programs) and then ``evolutionary_trials`` programs found by
evolutionary search (MetaSchedule's XGB cost model: near-optimal programs), like TenSet. Output, in
``out_dir``:

* one standard MetaSchedule JSON database per task, ``<task>/database_{workload,tuning_record}.json``,
  plus ``<task>/task.json`` (name, network tags, weights, status, counts);
* ``manifest.json``: device, CPU model or GPU name, target JSON (with ``mcpu``), TVM version,
  measurement settings, builder, date, load average, and valid / build-failed / run-failed counts;
  ``runs``: one entry per ``collect`` run (start, end, seconds, tasks finished, valid records gained,
  load average), updated after every task so that a killed run keeps its time window.
  ``cdmpp-tvm data-card DIR`` turns a manifest into the tables of ``data/README.md``.

Order: tasks are measured round-robin across their sources (first tag; sources with a single task, such
as operators, share one turn), so an interrupted or partial collection still covers every network.

Resumable: a finished task is skipped, an interrupted phase continues with its remaining trials.
Interruptible: MetaSchedule appends each measured batch to the database as it completes, so a kill
loses at most the batch in flight. Build and run errors are counted, never fatal.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import tvm
from tqdm import tqdm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex

from tvm_patches.fast_builder import make_builder
from tvm_patches.ffi_version import installed_tvm_versions
from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics

from ..atomic_io import write_json_atomic
from ..device import device_name
from ..errors import UserError
from ..workloads import Task
from .database_files import repair_torn_database
from .reader import RECORD_FILE, WORKLOAD_FILE, latency_of

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TASK_FILE = "task.json"


@dataclass
class CollectConfig:
    random_trials: int = 64
    evolutionary_trials: int = 64
    trials_per_iter: int = 32
    population_size: int = 512
    number: int = 1
    repeat: int = 3
    min_repeat_ms: int = 40
    enable_cpu_cache_flush: bool = False
    builder: str = "fast"  # "fast" (tvm_patches.fast_builder) or "default" (MetaSchedule's LocalBuilder)
    build_timeout_s: float = 60.0
    run_timeout_s: float = 30.0
    seed: int = 0
    # Give a task up when this many programs of its random phase all failed (None: never); see _CountResults.
    give_up_after_failed: int | None = 32

    def evaluator(self) -> ms.runner.EvaluatorConfig:
        return ms.runner.EvaluatorConfig(number=self.number, repeat=self.repeat, min_repeat_ms=self.min_repeat_ms,
                                         enable_cpu_cache_flush=self.enable_cpu_cache_flush)


@dataclass
class RPCSettings:
    tracker_host: str
    tracker_port: int
    key: str
    session_timeout_s: float = 60.0


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


def file_name_part(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``_``, ``.`` and ``-`` made one ``_``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def task_dir_name(task: Task) -> str:
    """Stable across runs (resume finds the same directory): readable name + workload hash."""
    return f"{file_name_part(task.name)[:80]}-{shash2hex(task.mod)[2:12]}"


def _exhausted_design_space(record_file: Path) -> str | None:
    """A message when at most 1/8 of the measured programs are distinct (the design space is one or a
    few programs), else None."""
    traces = [_trace_key(rec) for _, rec in _database_lines(record_file)]
    if len(traces) >= 8 and len(set(traces)) <= len(traces) // 8:
        return f"{len(set(traces))} distinct program(s) among {len(traces)} random samples"
    return None


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _gpu_name(target) -> str | None:
    if target.kind.name != "cuda":
        return None
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


def collect(tasks: list[Task], target: tvm.target.Target, out_dir: str | os.PathLike, cfg: CollectConfig,
            rpc: RPCSettings | None = None, progress: bool = True) -> dict:
    """Measure every task (resuming where a previous run stopped) and return the manifest."""
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    out = Path(out_dir)
    manifest_path, manifest = _open_manifest(out, target, cfg, rpc)
    builder, runner = _builder(cfg), _runner(cfg, rpc)
    per_task = cfg.random_trials + cfg.evolutionary_trials
    todo = [t for t in interleave_by_source(tasks) if manifest["tasks"].get(task_dir_name(t), {}).get("status") != "done"]
    with tqdm(total=per_task * len(todo), desc="measured", unit="trial", disable=not progress) as bar:
        for task in todo:
            state = _collect_task(task, target, out, cfg, builder, runner, bar)
            _record_task(manifest_path, manifest, task_dir_name(task), state)
    return _finish_run(manifest_path, manifest)


def _open_manifest(out: Path, target, cfg: CollectConfig, rpc: RPCSettings | None) -> tuple[Path, dict]:
    """The output directory's manifest (resumed if present), updated with this run's description."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest.update(_describe_run(target, cfg, rpc))
    manifest.setdefault("tasks", {})
    # One entry per run, kept up to date after every task, so that a run stopped with a kill still has
    # its time window and yield in the manifest (the data card's collection periods and records/hour).
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    manifest.setdefault("runs", []).append(
        {"start": now, "end": now, "start_unix": time.time(), "seconds": 0.0, "tasks": 0, "valid_records": 0,
         "valid_at_start": task_totals(manifest["tasks"])["valid"], "loadavg_at_start": list(os.getloadavg())})
    write_json_atomic(path, manifest)
    return path, manifest


def _record_task(path: Path, manifest: dict, name: str, state: dict) -> None:
    """Put one finished task's facts (from its task.json state) in the manifest and write it."""
    manifest["tasks"][name] = {k: state[k] for k in ("name", "tags", "weights", "weight", "workload", "valid",
                                                     "build_failed", "run_failed", "records", "seconds", "status")} \
        | {"stopped_early": state.get("stopped_early", {}).get("reason")}
    manifest["totals"] = task_totals(manifest["tasks"])
    manifest["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
    run = manifest["runs"][-1]
    run["end"], run["tasks"], run["seconds"] = manifest["updated"], run["tasks"] + 1, time.time() - run["start_unix"]
    # Valid records this run added to the manifest's total (a task interrupted by a kill counts, with
    # all its records, in the run that finishes it).
    run["valid_records"] = manifest["totals"]["valid"] - run["valid_at_start"]
    write_json_atomic(path, manifest)


def _finish_run(path: Path, manifest: dict) -> dict:
    """Close this run's ``runs`` entry; ``last_run`` is its summary (what ``collect`` prints)."""
    run = manifest["runs"][-1]
    run.update(end=time.strftime("%Y-%m-%d %H:%M:%S"), seconds=time.time() - run["start_unix"],
               loadavg_at_end=list(os.getloadavg()))
    manifest["last_run"] = {"tasks": run["tasks"], "seconds": run["seconds"], "valid_records": run["valid_records"],
                            "valid_records_per_hour": valid_per_hour(run), "loadavg_at_end": run["loadavg_at_end"]}
    write_json_atomic(path, manifest)
    return manifest


def valid_per_hour(run: dict) -> float | None:
    """Valid records per hour of a manifest ``runs`` entry; None for a run without measured time."""
    seconds = run.get("seconds") or 0.0
    return run.get("valid_records", 0) / seconds * 3600 if seconds > 0 else None


def _builder(cfg: CollectConfig):
    if cfg.builder == "fast":
        return make_builder(timeout_sec=cfg.build_timeout_s)
    return ms.builder.LocalBuilder(timeout_sec=cfg.build_timeout_s)


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
        ph = state["phases"].setdefault(phase, {"records_at_start": _count_lines(work / RECORD_FILE), "done": False})
        if ph["done"] or trials == 0:
            continue
        if phase == "evolutionary" and (exhausted := _exhausted_design_space(work / RECORD_FILE)):
            # Also catches a task whose random phase finished before the in-batch check existed, or was resumed.
            state["stopped_early"] = {"reason": "design_space_exhausted", "detail": exhausted}
            break
        remaining = trials - (_count_lines(work / RECORD_FILE) - ph["records_at_start"])
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


def phase_seed(seed: int, phase: str, attempt: int) -> int:
    """rand_state of a collection phase: the first attempt keeps the seed of earlier cdmpp-tvm versions
    (seed, seed + 1), every resumed attempt gets a stream of its own."""
    return seed + (0 if phase == "random" else 1) + 7919 * (attempt - 1)


def _count_from_database(state: dict, work: Path) -> None:
    """``records`` and ``valid`` from the database itself (a kill can land between MetaSchedule's commit
    of a batch and any counter); build and run failures, which the database does not tell apart, stay
    as _CountResults counted them batch by batch."""
    lines = _database_lines(work / RECORD_FILE)
    state["records"] = len(lines)
    state["valid"] = sum(1 for _, rec in lines if latency_of(rec[1]) is not None)


def _runner(cfg: CollectConfig, rpc: RPCSettings | None):
    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=cfg.run_timeout_s, evaluator_config=cfg.evaluator())
    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(tracker_host=rpc.tracker_host, tracker_port=rpc.tracker_port,
                                       tracker_key=rpc.key, session_timeout_sec=rpc.session_timeout_s),
        evaluator_config=cfg.evaluator(), max_workers=1)


def _describe_run(target, cfg: CollectConfig, rpc: RPCSettings | None) -> dict:
    versions = installed_tvm_versions()
    return {
        "device": device_name(target),
        "cpu_model": _cpu_model() if rpc is None else "remote (see rpc)",
        "gpu_name": _gpu_name(target),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "target": _target_json(target),
        "tvm_version": versions.get("apache-tvm"),
        "tvm_ffi_version": versions.get("apache-tvm-ffi"),
        "settings": asdict(cfg),
        "rpc": None if rpc is None else asdict(rpc),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_at_start": os.getloadavg(),
    }


def _target_json(target) -> dict | str:
    """A target as its JSON dict (0.27 prints targets as JSON), for the manifest."""
    try:
        return json.loads(str(target))
    except ValueError:
        return str(target)


def task_totals(tasks: dict) -> dict:
    """Valid / build-failed / run-failed / all records and the task count of a manifest's tasks."""
    keys = ("valid", "build_failed", "run_failed", "records")
    return {k: sum(t.get(k, 0) for t in tasks.values()) for k in keys} | {"tasks": len(tasks)}


# ------------------------------------------------------------------------------------ --from-selection

def _trace_key(record_json) -> str:
    """Identity of a program in a database line: its trace JSON (the same text in the selection's
    database and in the measured one)."""
    return json.dumps(record_json[0], sort_keys=True, separators=(",", ":"))


def _database_lines(path: Path) -> list[tuple[int, list]]:
    """(workload index, record JSON) of every parsable line of a tuning-record file."""
    out = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                wl_index, rec = json.loads(line)
                out.append((int(wl_index), rec))
            except (ValueError, TypeError):
                continue  # a truncated last line of a killed run: that program is measured again
    return out


def _device_type(target) -> str:
    """RunnerInput's device type: "cpu" for llvm ("llvm" is refused), else the target kind."""
    return "cpu" if target.kind.name == "llvm" else target.kind.name


def collect_from_selection(selection_dir: str | os.PathLike, target: tvm.target.Target, out_dir: str | os.PathLike,
                           cfg: CollectConfig, rpc: RPCSettings | None = None, progress: bool = True) -> dict:
    """Measure exactly the programs of a selection (``cdmpp-tvm select``) on ``target`` and return the
    manifest.

    Writes, like ``collect``, one standard MetaSchedule JSON database per task (the selected programs
    with their measured ``run_secs``, ``[1e10]`` for a build or run error) + ``task.json`` (phase
    ``selection``) + ``manifest.json`` (with a ``selection`` entry). Programs are built with the
    project's builder and run with the collect runner in batches of ``cfg.trials_per_iter``; each batch
    is committed as it completes. Resumable: a program whose trace is already in the output database is
    not measured again. Raises ``SelectionError`` (a ValueError) for a missing or invalid selection,
    before anything is built."""
    from ..selection import read_selection

    sel_dir = Path(selection_dir)
    selection = read_selection(sel_dir)
    out = Path(out_dir)
    if out.resolve() == sel_dir.resolve():
        raise UserError(f"--out {out} is the selection directory; measure into another directory")
    # Read every selected program first, so a broken selection fails before any build.
    plan: list[tuple[str, dict, ms.database.Workload, list[list]]] = []
    for name, entry in selection["tasks"].items():
        if entry["selected"] == 0:
            continue
        lines = _database_lines(sel_dir / name / RECORD_FILE)
        wl_lines = [ln for ln in (sel_dir / name / WORKLOAD_FILE).read_text().splitlines() if ln.strip()]
        if not wl_lines or not lines:
            raise UserError(f"{sel_dir / name}: no workload or no selected programs; the selection is incomplete")
        workload = ms.database.Workload.from_json(json.loads(wl_lines[0]))
        plan.append((name, entry, workload, [rec for _, rec in lines]))
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    manifest_path, manifest = _open_manifest(out, target, cfg, rpc)
    manifest["selection"] = {"dir": str(sel_dir), "method": selection["method"], "budget": selection["budget"],
                             "device": selection.get("device", {}).get("name"),
                             "checkpoint": selection.get("checkpoint"), "selected_target": selection["target"]}
    builder, runner = _builder(cfg), _runner(cfg, rpc)
    total = sum(len(recs) for _, _, _, recs in plan)
    with tqdm(total=total, desc="measured", unit="program", disable=not progress) as bar:
        for name, entry, workload, records in plan:
            state = _measure_selected_task(name, entry, workload, records, target, out, cfg, builder, runner, bar)
            _record_task(manifest_path, manifest, name, state)
    return _finish_run(manifest_path, manifest)


def _measure_selected_task(name: str, entry: dict, workload, records: list[list], target, out: Path,
                           cfg: CollectConfig, builder, runner, bar) -> dict:
    """Measure the not yet measured programs of one selected task; -> its task.json state."""
    work = out / name
    work.mkdir(exist_ok=True)
    task_path = work / TASK_FILE
    state = json.loads(task_path.read_text()) if task_path.exists() else {
        "name": entry["name"], "tags": list(entry.get("tags", [])), "weights": entry.get("weights", {}),
        "weight": entry.get("weight", 1.0), "workload": entry.get("workload"), "phases": {}, "valid": 0,
        "build_failed": 0, "run_failed": 0, "seconds": 0.0}
    done = {_trace_key(rec) for _, rec in _database_lines(work / RECORD_FILE)}
    todo = [rec for rec in records if _trace_key(rec) not in done]
    bar.update(len(records) - len(todo))
    state["phases"]["selection"] = {"selected": len(records), "done": False}
    state["status"] = "running"
    write_json_atomic(task_path, state)
    repair_torn_database(work)
    database = ms.database.JSONDatabase(work_dir=str(work))
    wl = database.commit_workload(workload.mod)
    t0 = time.time()
    for b in range(0, len(todo), cfg.trials_per_iter):
        batch = [ms.database.TuningRecord.from_json(rec, workload) for rec in todo[b:b + cfg.trials_per_iter]]
        cands = [r.as_measure_candidate() for r in batch]
        results = measure_candidates(cands, target, builder, runner)
        for rec, cand, (run_secs, kind) in zip(batch, cands, results):
            database.commit_tuning_record(ms.database.TuningRecord(
                trace=rec.trace, workload=wl, run_secs=run_secs, target=target, args_info=cand.args_info))
            state[kind] += 1
        bar.update(len(batch))
        state["seconds"] += time.time() - t0
        t0 = time.time()
        write_json_atomic(task_path, state)
    state["records"] = _count_lines(work / RECORD_FILE)
    state["phases"]["selection"]["done"] = True
    state["status"] = "done"
    write_json_atomic(task_path, state)
    return state


def measure_candidates(cands: list, target, builder, runner) -> list[tuple[list[float], str]]:
    """Build and run MeasureCandidates as MetaSchedule's task scheduler does (BuilderInput ->
    builder.build, RunnerInput -> runner.run, then the futures' results), removing the build artifacts.
    -> per candidate (run_secs, "valid" | "build_failed" | "run_failed"), run_secs ``[1e10]`` on an error."""
    from tvm.s_tir.meta_schedule.utils import remove_build_dir

    failed = [1e10]  # what MetaSchedule stores for a build or run error
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in cands])
    out: list[tuple[list[float], str] | None] = [None] * len(cands)
    inputs, where = [], []
    for i, (c, b) in enumerate(zip(cands, built)):
        if b.error_msg is not None or b.artifact_path is None:
            logger.debug("build failed: %s", str(b.error_msg)[-300:])
            out[i] = (failed, "build_failed")
        else:
            inputs.append(ms.runner.RunnerInput(b.artifact_path, _device_type(target), c.args_info))
            where.append(i)
    try:
        futures = runner.run(inputs) if inputs else []
        for i, fut in zip(where, futures):
            r = fut.result()
            secs = None if r.run_secs is None else [float(s) for s in r.run_secs]
            if r.error_msg is not None or latency_of(secs) is None:
                logger.debug("run failed: %s", str(r.error_msg)[-300:])
                out[i] = (failed, "run_failed")
            else:
                out[i] = (secs, "valid")
    finally:
        for i in where:
            try:
                remove_build_dir(built[i].artifact_path)
            except OSError:
                pass
    return [o if o is not None else (failed, "run_failed") for o in out]
