"""The no-search reference of a GPU search benchmark: each task scheduled by TVM's rule-based DLight GPU
rules, built and measured with the benchmark's own builder and runner, so that its latency compares with
the programs the searches found (``bench-search --dlight-reference``).

The rules, in order, are those TVM 0.27's CUDA pipeline applies to functions nothing else scheduled
(``tvm/relax/backend/cuda/pipeline.py``): the first rule that applies schedules the task. Written to
``<out>/dlight_reference.json`` (per task: the rule, the latency, or why there is none), resumable: a task
already there is not measured again."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import tvm
from tvm.s_tir import dlight as dl
from tvm.s_tir import meta_schedule as ms

from tvm_patches.fast_builder import make_builder

from ..atomic_io import write_json_atomic, write_text_atomic
from ..data.reader import latency_of
from ..tuning import default_runner
from ..workloads import Task
from .report import best_at, geomean

logger = logging.getLogger(__name__)

DLIGHT_FILE = "dlight_reference.json"
DLIGHT_REPORT = "dlight_reference.md"
GPU_RULES = (dl.gpu.Matmul, dl.gpu.GEMV, dl.gpu.Reduction, dl.gpu.GeneralReduction, dl.gpu.Fallback)


def dlight_schedule(task: Task, target) -> tuple[str, tvm.IRModule] | None:
    """(name of the rule that applied, the task's module scheduled by it), or None when no rule applies."""
    func = task.mod["main"]
    with target:
        for rule_class in GPU_RULES:
            space = rule_class().apply(func, target, False)
            if space is None:
                continue
            sch = space[0] if isinstance(space, (list, tuple)) else space
            return rule_class.__name__, sch.mod
    return None


def measure_dlight_reference(tasks: list[Task], target, out_dir: str | Path) -> dict[str, dict]:
    """Per task name: {"rule", "latency_s"} or {"rule", "error"}; measured once, kept in DLIGHT_FILE."""
    if target.kind.name != "cuda":
        raise ValueError(f"the DLight reference is for CUDA targets (DLight's GPU rules), not {target.kind.name}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / DLIGHT_FILE
    done: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
    builder, runner = make_builder(), default_runner()
    for task in tasks:
        if task.name in done:
            continue
        entry = _measure_one(task, target, builder, runner)
        logger.info("DLight reference of %s: %s", task.name, entry)
        done[task.name] = entry
        write_json_atomic(path, done)
    return done


def _measure_one(task: Task, target, builder, runner) -> dict:
    scheduled = dlight_schedule(task, target)
    if scheduled is None:
        return {"rule": None, "error": "no DLight GPU rule applies"}
    rule, mod = scheduled
    (built,) = builder.build([ms.builder.BuilderInput(mod, target)])
    if built.error_msg:
        return {"rule": rule, "error": "build: " + built.error_msg.strip().splitlines()[-1][:300]}
    runner_input = ms.runner.RunnerInput(built.artifact_path, device_type=target.kind.name,
                                         args_info=ms.arg_info.ArgInfo.from_prim_func(mod["main"]))
    (future,) = runner.run([runner_input])
    result = future.result()
    lat = latency_of(result.run_secs) if result.error_msg is None else None
    if lat is None:
        return {"rule": rule, "error": "run: " + (result.error_msg or "no valid time").strip().splitlines()[-1][:300]}
    return {"rule": rule, "latency_s": lat}


def dlight_comparison(reference: dict[str, dict], runs: list[dict], budgets: tuple[int, ...]) -> dict:
    """Per model and budget: geomean over tasks with a DLight latency and over seeds of (DLight's latency /
    the run's best within the budget): above 1 the search beats the rule-based schedule."""
    out: dict[str, dict[int, float | None]] = {}
    for model in sorted({r["model"] for r in runs}):
        out[model] = {}
        for budget in budgets:
            ratios = [reference[r["task"]]["latency_s"] / best for r in runs if r["model"] == model
                      and "latency_s" in reference.get(r["task"], {}) and (best := best_at(r["curve"], budget))]
            out[model][budget] = geomean(ratios)
    return out


def dlight_markdown(reference: dict[str, dict], comparison: dict) -> str:
    budgets = sorted({b for per in comparison.values() for b in per})
    lines = ["## DLight reference (TVM's rule-based GPU schedules, no search)", "",
             "Geomean over tasks with a DLight latency and over seeds of DLight's latency / the model's best "
             "within the budget (above 1: the search beats the rule-based schedule).", "",
             "| model | " + " | ".join(f"{b} trials" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    for model, per in comparison.items():
        lines.append(f"| {model} | " + " | ".join("n/a" if per[b] is None else f"{per[b]:.3f}x" for b in budgets) + " |")
    lines += ["", "| task | rule | DLight latency (ms) |", "|---|---|---|"]
    for task, entry in reference.items():
        value = f"{1e3 * entry['latency_s']:.4f}" if "latency_s" in entry else entry["error"]
        lines.append(f"| {task} | {entry['rule'] or 'none'} | {value} |")
    return "\n".join(lines) + "\n"


def dlight_report(tasks: list[Task], out_dir: str | Path, runs: list[dict], budgets: tuple[int, ...]) -> str | None:
    """The measured reference (DLIGHT_FILE) compared with the runs, written to DLIGHT_REPORT; returns its
    text, or None when nothing is measured yet."""
    path = Path(out_dir) / DLIGHT_FILE
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    reference = {t.name: measured[t.name] for t in tasks if t.name in measured}
    text = dlight_markdown(reference, dlight_comparison(reference, runs, budgets))
    write_text_atomic(Path(out_dir) / DLIGHT_REPORT, text)
    return text
