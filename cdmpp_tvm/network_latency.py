"""Whole-network latency: ``cdmpp-tvm predict-network``.

Predicted network latency = sum over the network's tasks of (task weight x predicted latency of the
task's best known schedule). A task's best known schedule is

* ``"measured"``: its fastest valid record in the given MetaSchedule databases (matched by workload
  structural hash), when there is one; the model still predicts its latency, and the measured
  latency is reported beside the prediction;
* ``"sampled"``: otherwise, the best-predicted of ``samples`` random programs of its design space.

``measure_network_latency`` compiles the network with exactly those schedules
(MetaScheduleApplyDatabase over an in-memory database holding one record per task) and times it in
the Relax VM, so the prediction can be compared with the real thing.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex

from tvm_patches.candidates import sample_candidates

from .model.checkpoint import Checkpoint
from .data.reader import MeasuredRecord, read_databases
from .device import device_descriptor
from .features import CompactASTFeaturizer, is_gpu_target
from .workloads import legalize_and_fuse, network_relax_module, network_tasks

logger = logging.getLogger(__name__)


@dataclass
class TaskLatency:
    name: str
    weight: float
    source: str  # "measured" or "sampled" (see module docstring)
    predicted_s: float
    measured_s: float | None  # the database's measurement of that schedule, when source == "measured"


@dataclass
class NetworkPrediction:
    network: str
    batch_size: int
    target: str
    checkpoint: str
    tasks: list[TaskLatency] = field(default_factory=list)
    measured_network_s: float | None = None  # filled by measure_network_latency
    # The chosen schedules, for measure_network_latency; not serialized.
    _records: list[ms.database.TuningRecord] = field(default_factory=list, repr=False)

    @property
    def predicted_s(self) -> float:
        return float(sum(t.weight * t.predicted_s for t in self.tasks))

    @property
    def measured_tasks_s(self) -> float | None:
        """Sum of weight x measured latency, when every task's schedule was measured."""
        if any(t.measured_s is None for t in self.tasks):
            return None
        return float(sum(t.weight * t.measured_s for t in self.tasks))

    def to_dict(self) -> dict:
        return {"network": self.network, "batch_size": self.batch_size, "target": self.target,
                "checkpoint": self.checkpoint, "predicted_s": self.predicted_s,
                "measured_tasks_s": self.measured_tasks_s, "measured_network_s": self.measured_network_s,
                "tasks": [asdict(t) for t in self.tasks]}


def _best_records(databases: list[str]) -> dict[str, MeasuredRecord]:
    """Fastest valid record per workload hash."""
    best: dict[str, MeasuredRecord] = {}
    if not databases:
        return best
    report = read_databases(databases)
    for problem in report.problems:
        logger.warning("skipped: %s", problem)
    for rec in report.records:
        if rec.latency_s is not None and (rec.task_key not in best or rec.latency_s < best[rec.task_key].latency_s):
            best[rec.task_key] = rec
    return best


def predict_network_latency(network: str, target: tvm.target.Target, checkpoint: Checkpoint,
                            databases: list[str] | None = None, batch_size: int = 1, samples: int = 256,
                            seed: int = 0) -> NetworkPrediction:
    tasks = network_tasks(network, target, batch_size)
    best = _best_records(list(databases or []))
    featurizer = CompactASTFeaturizer()
    gpu = is_gpu_target(target)
    device_vec = device_descriptor(target)
    out = NetworkPrediction(network, batch_size, str(target), checkpoint.path)
    for task in tasks:
        rec = best.get(shash2hex(task.mod))
        if rec is not None:
            ast = featurizer.featurize([rec.scheduled_mod()], gpu)
            predicted = float(checkpoint.predict_latency_s(ast, device_vec)[0])
            out.tasks.append(TaskLatency(task.name, task.weight, "measured", predicted, rec.latency_s))
            out._records.append(rec.record)
            continue
        candidates = sample_candidates(task.mod, target, samples, seed=seed)
        if not candidates:
            raise RuntimeError(f"task {task.name}: no program could be sampled from its design space")
        pred = checkpoint.predict_latency_s(featurizer.featurize([c.sch.mod for c in candidates], gpu), device_vec)
        i = int(np.argmin(pred))
        out.tasks.append(TaskLatency(task.name, task.weight, "sampled", float(pred[i]), None))
        workload = ms.database.Workload(task.mod)
        out._records.append(ms.database.TuningRecord(candidates[i].sch.trace, workload, [float(pred[i])], target,
                                                     candidates[i].args_info))
    return out


def measure_network_latency(prediction: NetworkPrediction, target: tvm.target.Target, repeat: int = 5,
                            min_repeat_ms: int = 200) -> float:
    """Compile the network with the prediction's schedules and return its median latency in seconds."""
    database = ms.database.MemoryDatabase()
    for record in prediction._records:
        database.commit_tuning_record(ms.database.TuningRecord(
            record.trace, database.commit_workload(record.workload.mod), record.run_secs, record.target,
            record.args_info))
    mod, params = network_relax_module(prediction.network, prediction.batch_size)
    mod = legalize_and_fuse(mod, target)
    with target, database:
        mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=True)(mod)
    executable = tvm.compile(mod, target=target)
    dev = tvm.device("cpu" if target.kind.name == "llvm" else target.kind.name, 0)
    vm = relax.VirtualMachine(executable, dev)
    inputs = _random_inputs(mod["main"], dev)
    weights = [tvm.runtime.tensor(p.numpy(), dev) for p in params["main"]]
    vm.set_input("main", *inputs, *weights)
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)
    t0 = time.perf_counter()
    result = timer("main")
    logger.info("measured %s in %.1f s", prediction.network, time.perf_counter() - t0)
    prediction.measured_network_s = float(np.median(result.results))
    return prediction.measured_network_s


def _random_inputs(func, dev) -> list:
    n_inputs = int(func.attrs["num_input"]) if func.attrs and "num_input" in func.attrs else 1
    rng = np.random.default_rng(0)
    out = []
    for param in list(func.params)[:n_inputs]:
        tensor_type = param.ty  # relax TensorType in 0.27 (struct_info before)
        shape = [int(s) for s in tensor_type.shape]
        dtype = str(tensor_type.dtype)
        data = rng.integers(0, 10, size=shape) if "int" in dtype else rng.standard_normal(shape)
        out.append(tvm.runtime.tensor(data.astype(dtype), dev))
    return out
