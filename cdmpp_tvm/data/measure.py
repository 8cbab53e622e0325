"""How programs are built and timed: the measurement settings, the builder and runner, and
``measure_candidates`` (build + run a list of MeasureCandidates the way MetaSchedule's task scheduler does)."""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from dataclasses import dataclass

import psutil
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import remove_build_dir

from tvm_patches.fast_builder import make_builder

from .reader import latency_of

logger = logging.getLogger(__name__)


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
    # Train the evolutionary phase's XGBModel on the task's measured programs before the search starts.
    # A fresh XGBModel scores candidates uniformly at random until it has seen 100 programs, more than the
    # phase measures: without this (False, how data/dataset-cpu-znver4 was collected) the "evolutionary"
    # programs are mutations of the best measured ones picked at random.
    warm_start_xgb: bool = True

    def evaluator(self) -> ms.runner.EvaluatorConfig:
        return ms.runner.EvaluatorConfig(number=self.number, repeat=self.repeat, min_repeat_ms=self.min_repeat_ms,
                                         enable_cpu_cache_flush=self.enable_cpu_cache_flush)


@dataclass
class RPCSettings:
    tracker_host: str
    tracker_port: int
    key: str
    session_timeout_s: float = 60.0


def collect_builder(cfg: CollectConfig):
    if cfg.builder == "fast":
        return make_builder(timeout_sec=cfg.build_timeout_s)
    return ms.builder.LocalBuilder(timeout_sec=cfg.build_timeout_s)


def collect_runner(cfg: CollectConfig, rpc: RPCSettings | None):
    if rpc is None:
        return ms.runner.LocalRunner(timeout_sec=cfg.run_timeout_s, evaluator_config=cfg.evaluator())
    return ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(tracker_host=rpc.tracker_host, tracker_port=rpc.tracker_port,
                                       tracker_key=rpc.key, session_timeout_sec=rpc.session_timeout_s),
        evaluator_config=cfg.evaluator(), max_workers=1)


@contextlib.contextmanager
def reap_workers_on_sigterm(what: str):
    """Within it, SIGTERM stops the measurement like Ctrl-C (SystemExit 143 raised where the process is, so
    each ``finally`` runs and nothing committed is lost), and on the way out, however it ends, the processes
    started inside it (the builder's and runner's popen workers) are killed. Python's default SIGTERM exits
    at once and leaves those workers running as orphans (one kept a core busy after a stopped ``collect``).
    Only the main thread can take signals: elsewhere only the reaping applies."""
    def on_sigterm(signum, frame):
        logger.warning("%s: SIGTERM received; stopping (measured batches are kept, a rerun resumes)", what)
        raise SystemExit(128 + signum)

    me = psutil.Process(os.getpid())
    before = {p.pid for p in me.children(recursive=True)}
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    try:
        yield
    finally:
        if in_main_thread:  # None: the previous handler was not set from Python; restore the default then
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
        started_here = [p for p in me.children(recursive=True) if p.pid not in before]
        for child in started_here:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        if started_here:
            logger.info("%s: stopped %d builder/runner worker process(es)", what, len(started_here))


def runner_device_type(target) -> str:
    """RunnerInput's device type: "cpu" for llvm ("llvm" is refused), else the target kind."""
    return "cpu" if target.kind.name == "llvm" else target.kind.name


def measure_candidates(cands: list, target, builder, runner) -> list[tuple[list[float], str]]:
    """Build and run MeasureCandidates as MetaSchedule's task scheduler does (BuilderInput ->
    builder.build, RunnerInput -> runner.run, then the futures' results), removing the build artifacts.
    -> per candidate (run_secs, "valid" | "build_failed" | "run_failed"), run_secs ``[1e10]`` on an error."""
    failed = [1e10]  # what MetaSchedule stores for a build or run error
    built = builder.build([ms.builder.BuilderInput(c.sch.mod, target) for c in cands])
    out: list[tuple[list[float], str] | None] = [None] * len(cands)
    inputs, where = [], []
    for i, (c, b) in enumerate(zip(cands, built)):
        if b.error_msg is not None or b.artifact_path is None:
            logger.debug("build failed: %s", str(b.error_msg)[-300:])
            out[i] = (failed, "build_failed")
        else:
            inputs.append(ms.runner.RunnerInput(b.artifact_path, runner_device_type(target), c.args_info))
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
