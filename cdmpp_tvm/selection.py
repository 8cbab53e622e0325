"""Which programs to measure on a new device: ``cdmpp-tvm select`` (CDMPP section 4.1, per program).

A few measurements on a new device are worth most when they cover the programs the model has to
predict. ``select_programs`` samples candidates of every task's design space, embeds them with a
trained model (the program embedding plus the new device's device embedding), clusters all embeddings
together with KMeans into ``budget`` clusters and takes, per cluster, its member nearest to the centre
(clusters visited largest first; every pick is distinct, see ``kmeans_select``). ``random`` picks
uniformly instead (the baseline).

Differences from the original: CDMPP's sampler picks whole *tasks* (k = number of tasks, a task is the
one whose schedules lie nearest to a centroid on average) and clusters flattened, min-max scaled raw
features; here single programs are picked, across tasks, by the model's own embedding, so a budget of
N measures exactly N programs.

A selection directory (``write_selection``) is what ``cdmpp-tvm collect --from-selection DIR`` measures:

* ``selection.json``: ``{"format": "cdmpp-tvm-selection", "version": 1, "method", "budget", "seed",
  "device": {"name", "descriptor", "spec"}, "target", "checkpoint", "per_task_candidates", "n_selected",
  "tasks": {dir: {"name", "tags", "weights", "weight", "workload", "candidates", "selected"}}, "created"}``
  (written last: a directory without it is not a selection);
* one standard MetaSchedule JSON database per task with selected programs, ``<dir>/database_{workload,
  tuning_record}.json``, whose records hold the programs' traces with ``run_secs`` null: *not measured*
  (``cdmpp_tvm.data.reader`` counts them as unmeasured, never as failures).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from .atomic_io import write_json_atomic
from .errors import UserError

SELECTION_FILE = "selection.json"
SELECTION_FORMAT = "cdmpp-tvm-selection"
SELECTION_VERSION = 1
METHODS = ("kmeans", "random")


class SelectionError(UserError):
    """A selection directory that is missing, incomplete or not a selection."""


# ------------------------------------------------------------------------------------------ choosing points

def kmeans_select(X: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """``budget`` distinct row indices of X (N, D): KMeans(n_clusters=budget, n_init="auto",
    random_state=seed), then per cluster (largest first) its member nearest to the centre. A cluster
    left without an unpicked member (duplicate points make empty clusters) takes the unpicked point
    nearest to its centre, so the result always has ``budget`` distinct indices."""
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    _check_budget(budget, n)
    if budget == n:
        return np.arange(n)
    km = KMeans(n_clusters=budget, n_init="auto", random_state=seed).fit(X)
    labels, centers = km.labels_, km.cluster_centers_
    sizes = np.bincount(labels, minlength=budget)
    taken = np.zeros(n, dtype=bool)
    chosen = []
    for c in np.argsort(-sizes, kind="stable"):
        d = np.linalg.norm(X - centers[c], axis=1)
        members = np.nonzero(labels == c)[0]
        pick = next((int(i) for i in members[np.argsort(d[members], kind="stable")] if not taken[i]), None)
        if pick is None:
            pick = next(int(i) for i in np.argsort(d, kind="stable") if not taken[i])
        taken[pick] = True
        chosen.append(pick)
    return np.asarray(chosen, dtype=int)


def random_select(n: int, budget: int, seed: int = 0) -> np.ndarray:
    """``budget`` distinct indices of range(n), uniformly at random."""
    _check_budget(budget, n)
    return np.sort(np.random.default_rng(seed).choice(n, size=budget, replace=False))


def select_indices(X: np.ndarray, budget: int, method: str = "kmeans", seed: int = 0) -> np.ndarray:
    if method == "kmeans":
        return kmeans_select(X, budget, seed)
    if method == "random":
        return random_select(len(X), budget, seed)
    raise UserError(f"selection method must be one of {METHODS}, got {method!r}")


def coverage_distance(X: np.ndarray, chosen: np.ndarray, chunk: int = 4096) -> float:
    """Mean over all points of the distance to the nearest chosen point: how well the chosen points
    represent the whole set (lower = better covered)."""
    X = np.asarray(X, dtype=np.float64)
    C = X[np.asarray(chosen, dtype=int)]
    out = []
    for i in range(0, len(X), chunk):
        d = np.linalg.norm(X[i:i + chunk, None, :] - C[None, :, :], axis=-1)
        out.append(d.min(1))
    return float(np.concatenate(out).mean())


def _check_budget(budget: int, n: int) -> None:
    if not isinstance(budget, (int, np.integer)) or budget < 1:
        raise UserError(f"budget must be an integer >= 1, got {budget!r}")
    if budget > n:
        raise UserError(f"budget {budget} is larger than the {n} programs to choose from; lower --budget or sample "
                         "more candidates per task (--per-task-candidates)")


# -------------------------------------------------------------------------------------------- embeddings

def embed_programs(checkpoint, asts: list, device_vec: np.ndarray | None, batch_size: int = 1024,
                   device: str = "auto") -> np.ndarray:
    """(N, embed_dim) embeddings (program + device embedding of ``device_vec``) of compact ASTs."""
    from .model.inference import default_torch_device, predict_transformed

    torch_device = default_torch_device(device)
    checkpoint.model.to(torch_device)
    _, z = predict_transformed(checkpoint.model, asts, device_vec, batch_size, torch_device, want_embedding=True)
    return z


# ---------------------------------------------------------------------------------------------- select

def select_programs(checkpoint, tasks: list, target, budget: int, out_dir: str | os.PathLike,
                    per_task_candidates: int = 256, method: str = "kmeans", seed: int = 0,
                    device_spec=None, progress: bool = True) -> dict:
    """Sample up to ``per_task_candidates`` distinct programs of each task's design space for ``target``,
    choose ``budget`` of them (``method``), write the selection to ``out_dir`` (see the module
    docstring) and return the content of its ``selection.json``.

    ``checkpoint``: a loaded ``Checkpoint``; ``device_spec``: the device table entry (or name) the
    selection is for, default ``device_for_target(target)``; its descriptor is what the embeddings use."""
    import tvm_ffi
    from tqdm import tqdm

    from tvm_patches.candidates import sample_candidates
    from tvm_patches.quiet_logging import quiet_metaschedule_logging
    from tvm_patches.tensor_intrin import register_tensor_intrinsics

    from .device import DeviceSpec, device_descriptor, device_for_target, device_name, get_device
    from .features import CompactASTFeaturizer, is_gpu_target

    if method not in METHODS:
        raise UserError(f"selection method must be one of {METHODS}, got {method!r}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise SelectionError(f"{out} exists and is not empty; a selection is written to a new or empty directory")
    spec = get_device(device_spec) if isinstance(device_spec, str) else device_spec
    if spec is None:
        spec = device_for_target(target)
    device_vec = device_descriptor(target, spec)
    quiet_metaschedule_logging()
    register_tensor_intrinsics(target)
    featurizer = CompactASTFeaturizer()
    gpu = is_gpu_target(target)
    per_task: list[list] = []
    asts, owner = [], []
    for i, task in enumerate(tqdm(tasks, desc="sample", unit="task", disable=not progress)):
        seen, cands = set(), []
        for c in sample_candidates(task.mod, target, per_task_candidates, seed=seed + i):
            h = tvm_ffi.structural_hash(c.sch.mod)
            if h not in seen:
                seen.add(h)
                cands.append(c)
        per_task.append(cands)
        asts += featurizer.featurize([c.sch.mod for c in cands], gpu)
        owner += [(i, j) for j in range(len(cands))]
    if not asts:
        raise SelectionError("no candidate programs could be sampled for any task")
    if method == "kmeans":
        X = embed_programs(checkpoint, asts, device_vec)
        chosen = kmeans_select(X, budget, seed)
    else:
        chosen = random_select(len(asts), budget, seed)
    picked: dict[int, list[int]] = {}
    for k in sorted(int(c) for c in chosen):
        t, j = owner[k]
        picked.setdefault(t, []).append(j)
    selection = {
        "format": SELECTION_FORMAT, "version": SELECTION_VERSION, "method": method, "budget": int(budget),
        "seed": seed, "per_task_candidates": per_task_candidates, "n_candidates": len(asts),
        "device": {"name": spec.name if isinstance(spec, DeviceSpec) else device_name(target),
                   "descriptor": [float(x) for x in device_vec],
                   "spec": spec.to_dict() if isinstance(spec, DeviceSpec) else None},
        "target": _target_json(target), "checkpoint": str(getattr(checkpoint, "path", "") or ""),
        "n_selected": int(len(chosen)), "tasks": {}, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_selection(out, tasks, per_task, picked, target, selection)
    return selection


def write_selection(out: Path, tasks: list, per_task: list[list], picked: dict[int, list[int]], target,
                    selection: dict) -> None:
    """Write one database per task with picked programs (records not measured: run_secs null), then
    ``selection.json`` (last, atomically)."""
    from tvm.s_tir import meta_schedule as ms
    from tvm.s_tir.meta_schedule.utils import shash2hex

    from .data.collect import task_dir_name

    out.mkdir(parents=True, exist_ok=True)
    for t, task in enumerate(tasks):
        js = picked.get(t, [])
        entry = {"name": task.name, "tags": list(task.tags), "weights": dict(task.weights), "weight": task.weight,
                 "workload": shash2hex(task.mod), "candidates": len(per_task[t]), "selected": len(js)}
        selection["tasks"][task_dir_name(task)] = entry
        if not js:
            continue
        work = out / task_dir_name(task)
        work.mkdir(parents=True, exist_ok=True)
        db = ms.database.JSONDatabase(work_dir=str(work))
        wl = db.commit_workload(task.mod)
        for j in js:
            c = per_task[t][j]
            db.commit_tuning_record(ms.database.TuningRecord(trace=c.sch.trace, workload=wl, run_secs=None,
                                                             target=target, args_info=c.args_info))
    write_json_atomic(out / SELECTION_FILE, selection)


def read_selection(directory: str | os.PathLike) -> dict:
    """The ``selection.json`` of a selection directory, checked: raises ``SelectionError`` naming what is
    wrong (missing directory or file, not JSON, another format, a task database missing)."""
    from .data.reader import RECORD_FILE, WORKLOAD_FILE

    d = Path(directory)
    if not d.is_dir():
        raise SelectionError(f"selection directory {d} does not exist (make one with cdmpp-tvm select)")
    path = d / SELECTION_FILE
    if not path.is_file():
        raise SelectionError(f"{d} is not a selection: no {SELECTION_FILE} (make one with cdmpp-tvm select; an "
                             "interrupted select leaves no selection.json)")
    try:
        sel = json.loads(path.read_text())
    except ValueError as e:
        raise SelectionError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(sel, dict) or sel.get("format") != SELECTION_FORMAT:
        raise SelectionError(f"{path}: not a cdmpp-tvm selection (format is not {SELECTION_FORMAT!r})")
    if sel.get("version") != SELECTION_VERSION:
        raise SelectionError(f"{path}: selection version {sel.get('version')}, this cdmpp-tvm reads {SELECTION_VERSION}")
    for key in ("method", "budget", "target", "tasks"):
        if key not in sel:
            raise SelectionError(f"{path}: missing {key!r}")
    for name, entry in sel["tasks"].items():
        if not isinstance(entry, dict) or "selected" not in entry or "name" not in entry:
            raise SelectionError(f"{path}: task {name!r} has no 'name'/'selected'")
        if entry["selected"] > 0:
            for f in (WORKLOAD_FILE, RECORD_FILE):
                if not (d / name / f).is_file():
                    raise SelectionError(f"{d / name}: {f} is missing; the selection is incomplete")
    return sel


def _target_json(target) -> dict | str:
    try:
        return json.loads(str(target))
    except ValueError:
        return str(target)
