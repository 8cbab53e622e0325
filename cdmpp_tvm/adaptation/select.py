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

The selection directory format is in ``cdmpp_tvm.data.selection_files``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import tvm_ffi
from sklearn.cluster import KMeans
from tqdm import tqdm

from tvm_patches.candidates import sample_candidates
from tvm_patches.quiet_logging import quiet_metaschedule_logging
from tvm_patches.tensor_intrin import register_tensor_intrinsics

from ..data.manifest import target_json
from ..data.selection_files import SELECTION_FORMAT, SELECTION_VERSION, SelectionError, write_selection
from ..device import DeviceSpec, device_descriptor, device_for_target, device_name, get_device
from ..errors import UserError
from ..features import CompactASTFeaturizer, is_gpu_target
from ..model.inference import default_torch_device, predict_transformed

METHODS = ("kmeans", "random")


# ------------------------------------------------------------------------------------------ choosing points

def kmeans_select(X: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """``budget`` distinct row indices of X (N, D): KMeans(n_clusters=budget, n_init="auto",
    random_state=seed), then per cluster (largest first) its member nearest to the centre. A cluster
    left without an unpicked member (duplicate points make empty clusters) takes the unpicked point
    nearest to its centre, so the result always has ``budget`` distinct indices."""
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
        "target": target_json(target), "checkpoint": str(getattr(checkpoint, "path", "") or ""),
        "n_selected": int(len(chosen)), "tasks": {}, "created": time.strftime("%Y-%m-%d %H:%M:%S")}
    write_selection(out, tasks, per_task, picked, target, selection)
    return selection
