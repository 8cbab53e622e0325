"""Collect real measurements: ``cdmpp-tvm collect``.

For each task of a workload suite, measure ``random_trials`` programs drawn uniformly from the design
space (ReplayTrace: slow and average programs) and then ``evolutionary_trials`` programs found by
evolutionary search (MetaSchedule's XGB cost model: near-optimal programs), like TenSet. Output, in
``out_dir``:

* one standard MetaSchedule JSON database per task, ``<task>/database_{workload,tuning_record}.json``,
  plus ``<task>/task.json`` (name, network tags, weights, status, counts);
* ``manifest.json``: device, CPU model or GPU name, target JSON (with ``mcpu``), TVM version,
  measurement settings, builder, date, load average, and valid / build-failed / run-failed counts.

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

from ..device import device_name
from ..workloads import Task
from .reader import RECORD_FILE

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
    # Give a task up when this many programs of its random phase all failed (None: never).
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
    """Counts valid, build-failed and run-failed measurements and advances the progress bar."""

    def __init__(self, bar: tqdm | None, give_up_after_failed: int | None = None):
        super().__init__()
        self.bar = bar
        self.give_up_after_failed = give_up_after_failed
        self.valid = self.build_failed = self.run_failed = 0
        self.first_error: str | None = None

    def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results) -> None:
        for b, r in zip(builder_results, runner_results):
            if b.error_msg is not None:
                self.build_failed += 1
            elif r.error_msg is not None or not r.run_secs:
                self.run_failed += 1
            else:
                self.valid += 1
                continue
            self.first_error = self.first_error or str(b.error_msg or r.error_msg or "no run_secs")[-600:]
        if self.bar is not None:
            self.bar.update(len(measure_candidates))
        failed = self.build_failed + self.run_failed
        if self.give_up_after_failed and self.valid == 0 and failed >= self.give_up_after_failed:
            # E.g. a gather/take whose random index inputs are out of bounds: every program of the task
            # crashes the same way, so measuring the rest would only burn machine time.
            raise _Unmeasurable(f"the first {failed} programs all failed: {self.first_error}")


class _Unmeasurable(RuntimeError):
    """Every program of a task failed so far; the task is given up (recorded in task.json)."""


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


def task_dir_name(task: Task) -> str:
    """Stable across runs (resume finds the same directory): readable name + workload hash."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", task.name)[:80]
    return f"{safe}-{shash2hex(task.mod)[2:12]}"


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


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
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update(_describe_run(target, cfg, rpc))
    manifest.setdefault("tasks", {})
    builder = make_builder(timeout_sec=cfg.build_timeout_s) if cfg.builder == "fast" else \
        ms.builder.LocalBuilder(timeout_sec=cfg.build_timeout_s)
    runner = _runner(cfg, rpc)
    per_task = cfg.random_trials + cfg.evolutionary_trials
    todo = [t for t in interleave_by_source(tasks) if manifest["tasks"].get(task_dir_name(t), {}).get("status") != "done"]
    start = time.time()
    with tqdm(total=per_task * len(todo), desc="measured", unit="trial", disable=not progress) as bar:
        for task in todo:
            entry = _collect_task(task, target, out, cfg, builder, runner, bar)
            manifest["tasks"][task_dir_name(task)] = entry
            manifest["totals"] = _totals(manifest["tasks"])
            manifest["updated"] = time.strftime("%Y-%m-%d %H:%M:%S")
            _write_json_atomic(manifest_path, manifest)
    elapsed = time.time() - start
    new_valid = sum(manifest["tasks"][task_dir_name(t)]["valid"] for t in todo)
    manifest["last_run"] = {"tasks": len(todo), "seconds": elapsed, "valid_records": new_valid,
                            "valid_records_per_hour": new_valid / elapsed * 3600 if elapsed > 0 else None,
                            "loadavg_at_end": os.getloadavg()}
    _write_json_atomic(manifest_path, manifest)
    return manifest


def _collect_task(task: Task, target, out: Path, cfg: CollectConfig, builder, runner, bar) -> dict:
    work = out / task_dir_name(task)
    work.mkdir(exist_ok=True)
    task_path = work / TASK_FILE
    state = json.loads(task_path.read_text()) if task_path.exists() else {
        "name": task.name, "tags": list(task.tags), "weights": task.weights, "weight": task.weight,
        "workload": shash2hex(task.mod), "phases": {}, "valid": 0, "build_failed": 0, "run_failed": 0,
        "seconds": 0.0}
    database = ms.database.JSONDatabase(work_dir=str(work))
    for phase, trials, strategy, cost_model in (
            ("random", cfg.random_trials, ms.search_strategy.ReplayTrace(), "random"),
            ("evolutionary", cfg.evolutionary_trials,
             ms.search_strategy.EvolutionarySearch(population_size=cfg.population_size), "xgb")):
        ph = state["phases"].setdefault(phase, {"records_at_start": _count_lines(work / RECORD_FILE), "done": False})
        if ph["done"] or trials == 0:
            continue
        remaining = trials - (_count_lines(work / RECORD_FILE) - ph["records_at_start"])
        _write_json_atomic(task_path, state)
        if remaining > 0:
            counter = _CountResults(bar, give_up_after_failed=cfg.give_up_after_failed if phase == "random" else None)
            t0 = time.time()
            ctx = ms.TuneContext(mod=task.mod, target=target, space_generator="post-order-apply",
                                 search_strategy=strategy, task_name=task.name,
                                 rand_state=cfg.seed + (0 if phase == "random" else 1), num_threads="physical")
            callbacks = list(ms.measure_callback.MeasureCallback.create("default")) + [counter]
            try:
                ms.tune_tasks(tasks=[ctx], task_weights=[1.0], work_dir=str(work), max_trials_global=remaining,
                              num_trials_per_iter=min(cfg.trials_per_iter, remaining), builder=builder, runner=runner,
                              database=database, cost_model=cost_model, measure_callbacks=callbacks,
                              task_scheduler="round-robin")
            except Exception as e:  # noqa: BLE001 - one task's failure must not stop the collection
                if counter.give_up_after_failed and counter.valid == 0 and \
                        counter.build_failed + counter.run_failed >= counter.give_up_after_failed:
                    state["unmeasurable"] = True
                    logger.error("task %s: giving up, the first %d programs all failed: %s", task.name,
                                 counter.build_failed + counter.run_failed, counter.first_error)
                else:
                    logger.error("task %s, phase %s failed: %s: %s", task.name, phase, type(e).__name__, e)
                state.setdefault("errors", []).append(f"{phase}: {type(e).__name__}: {e}"[:1000])
            if counter.first_error and "first_error" not in state:
                state["first_error"] = counter.first_error
            state["valid"] += counter.valid
            state["build_failed"] += counter.build_failed
            state["run_failed"] += counter.run_failed
            state["seconds"] += time.time() - t0
        ph["done"] = True
        _write_json_atomic(task_path, state)
        if state.get("unmeasurable"):
            break
    state["records"] = _count_lines(work / RECORD_FILE)
    state["status"] = "done"
    _write_json_atomic(task_path, state)
    return {k: state[k] for k in ("name", "tags", "weights", "weight", "workload", "valid", "build_failed",
                                  "run_failed", "records", "seconds", "status")} | {"unmeasurable": state.get("unmeasurable", False)}


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


def _totals(tasks: dict) -> dict:
    keys = ("valid", "build_failed", "run_failed", "records")
    return {k: sum(t.get(k, 0) for t in tasks.values()) for k in keys} | {"tasks": len(tasks)}
