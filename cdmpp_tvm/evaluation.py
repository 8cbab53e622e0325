"""Accuracy of a latency predictor on measured records: ``cdmpp-tvm evaluate`` and the benchmarks.

Definitions (``compute_metrics``), over records with predicted latency p > 0 and measured latency t > 0,
both in seconds, and a task (group) for each record:

* **MAPE** = mean over records of |p - t| / t, a fraction (0.14 means 14 %).
* **RMSE** = sqrt(mean over records of (p - t)^2) with p and t in **milliseconds**.
* **Spearman / Kendall** (per task): ``scipy.stats.spearmanr`` / ``kendalltau`` (tau-b) between p and t
  of the task's records. A task with fewer than 2 records or a constant measured latency has no
  ranking to get right: None. So has a task whose records are all **one program** measured repeatedly
  (``programs`` given: the injective tasks whose design space is a single schedule): their latencies
  differ by measurement noise only, and any predictor gives them one prediction; all four ranking
  metrics are None for them. Constant predictions on a task whose latencies differ carry no ranking
  information: 0.
* **top-k score** (per task) = (lowest measured latency of the task) / (lowest measured latency among
  the k records with the lowest predicted latency): the fraction of the best speed a tuner would reach
  by measuring only the model's top k. A ratio in (0, 1], 1 = the best program is in the top k. Ties
  in prediction are broken by record order. None for a task with fewer than 2 records.
* **spread** (per task, a diagnostic) = std of ln p / std of ln t over the task's records: 1 = the
  predictions vary within the task as much as the latencies do; > 1 they are stretched apart (MAPE pays
  for it even when the ranking is right), < 1 compressed. None where the ranking metrics are None or
  the measured latencies are constant. Overall: the **median** over tasks.
* **overall**: MAPE and RMSE over all records; Spearman, Kendall, top-1 and top-5 are the **mean over
  tasks** of the per-task values, skipping None (ranking programs of different tasks against each
  other is meaningless: a tuner only ever compares candidates of one task). None when no task has one.
  ``n_ranked_tasks`` says over how many tasks they are taken.
"""
from __future__ import annotations

import hashlib
import math

import numpy as np
from scipy import stats

RANKING_METRICS = ("spearman", "kendall", "top1", "top5")


def compute_metrics(pred_s, true_s, groups, programs=None) -> dict:
    """-> ``{"overall": {"mape", "rmse", "spearman", "kendall", "top1", "top5", "spread", "n_records",
    "n_tasks", "n_ranked_tasks"}, "per_task": [{"task", "n_records", "n_programs", "mape", "rmse", "spearman",
    "kendall", "top1", "top5", "spread"}, ...]}`` (per_task sorted by task). ``pred_s``, ``true_s``: (N,) latencies in seconds,
    finite and > 0; ``groups``: (N,) task of each record; ``programs``: None or (N,) identity of each
    record's program (``program_keys``), so that a task measuring a single program is not ranked.
    See the module docstring for the definitions."""
    pred, true, groups = _check_inputs(pred_s, true_s, groups)
    if programs is not None:
        programs = np.asarray(programs)
        if programs.shape != groups.shape:
            raise ValueError(f"compute_metrics: programs must have shape {groups.shape}, got {programs.shape}")
    per_task = []
    for task in sorted(np.unique(groups).tolist(), key=str):
        idx = np.nonzero(groups == task)[0]
        n_programs = len(idx) if programs is None else len(np.unique(programs[idx]))
        ranked = n_programs >= 2
        ranking = _ranking(pred[idx], true[idx]) if ranked else dict.fromkeys(RANKING_METRICS)
        per_task.append({"task": task, "n_records": len(idx), "n_programs": n_programs,
                         **_errors(pred[idx], true[idx]), **ranking,
                         "spread": _spread(pred[idx], true[idx]) if ranked else None})
    overall = {**_errors(pred, true)}
    for name in RANKING_METRICS:
        values = [t[name] for t in per_task if t[name] is not None]
        overall[name] = float(np.mean(values)) if values else None
    spreads = [t["spread"] for t in per_task if t["spread"] is not None]
    overall["spread"] = float(np.median(spreads)) if spreads else None
    overall.update(n_records=len(pred), n_tasks=len(per_task),
                   n_ranked_tasks=sum(t["top1"] is not None for t in per_task))
    return {"overall": overall, "per_task": per_task}


def log_ratios(measured, predicted) -> np.ndarray:
    """ln(measured / predicted) elementwise (float64); NaN where either is missing (None), <= 0 or not finite."""
    t = np.array([np.nan if v is None else v for v in measured], dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"log_ratios: {t.shape} measured but {p.shape} predicted latencies")
    ok = np.isfinite(t) & np.isfinite(p) & (t > 0) & (p > 0)
    out = np.full(t.shape, np.nan)
    out[ok] = np.log(t[ok] / p[ok])
    return out


def median_log_ratio(measured, predicted) -> float:
    """Median of the defined ``log_ratios``: the ln of the one factor that puts the predictions on the measured
    scale (a median, so one outlier cannot move it; a factor, so no ranking changes). 0.0 when none is defined."""
    r = log_ratios(measured, predicted)
    r = r[np.isfinite(r)]
    return float(np.median(r)) if r.size else 0.0


def program_keys(asts) -> np.ndarray:
    """(N,) identity of each program as the features see it (a digest of its leaves): records of one
    program measured several times share a key."""
    return np.array([hashlib.blake2b(np.ascontiguousarray(a.leaf_features).tobytes()
                                     + np.ascontiguousarray(a.preorder_position).tobytes(), digest_size=12).hexdigest()
                     for a in asts])


def _check_inputs(pred_s, true_s, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    arrays = []
    for name, a in (("pred_s", pred_s), ("true_s", true_s)):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"compute_metrics: {name} must be numbers: {e}") from e
        if a.ndim != 1:
            raise ValueError(f"compute_metrics: {name} must be a 1-D array, got shape {a.shape}")
        bad = ~np.isfinite(a) | (a <= 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"compute_metrics: {name} must be finite latencies > 0 seconds; "
                             f"{int(bad.sum())} are not (first: index {i}, value {a[i]})")
        arrays.append(a)
    groups = np.asarray(groups)
    if groups.ndim != 1:
        raise ValueError(f"compute_metrics: groups must be a 1-D array, got shape {groups.shape}")
    pred, true = arrays
    if not len(pred) == len(true) == len(groups):
        raise ValueError(f"compute_metrics: pred_s, true_s and groups must have the same length, got "
                         f"{len(pred)}, {len(true)} and {len(groups)}")
    if len(pred) == 0:
        raise ValueError("compute_metrics: no records")
    return pred, true, groups


def _errors(pred: np.ndarray, true: np.ndarray) -> dict:
    return {"mape": float(np.mean(np.abs(pred - true) / true)),
            "rmse": float(np.sqrt(np.mean(((pred - true) * 1e3) ** 2)))}


def _ranking(pred: np.ndarray, true: np.ndarray) -> dict:
    if len(true) < 2:
        return dict.fromkeys(RANKING_METRICS)
    out = {"top1": topk_score(pred, true, 1), "top5": topk_score(pred, true, 5)}
    if np.all(true == true[0]):
        out.update(spearman=None, kendall=None)
    elif np.all(pred == pred[0]):
        out.update(spearman=0.0, kendall=0.0)
    else:
        out.update(spearman=float(stats.spearmanr(pred, true).statistic),
                   kendall=float(stats.kendalltau(pred, true).statistic))
    return out


def _spread(pred: np.ndarray, true: np.ndarray) -> float | None:
    true_std = float(np.log(true).std())
    return None if len(true) < 2 or true_std == 0 else float(np.log(pred).std()) / true_std


def topk_score(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    """(min true latency) / (min true latency of the k records predicted fastest), in (0, 1]."""
    top = np.argsort(pred, kind="stable")[:k]
    return float(true.min() / true[top].min())


def format_metrics_table(result: dict, title: str = "") -> str:
    """The overall metrics and a per-task table of a ``compute_metrics`` result, as text."""
    o = result["overall"]
    lines = [title] if title else []
    lines.append(f"Overall: {o['n_records']} records, {o['n_tasks']} task(s): MAPE {format_percent(o['mape'])}, "
                 f"RMSE {o['rmse']:.4g} ms, and means over tasks: Spearman {format_number(o['spearman'])}, "
                 f"Kendall {format_number(o['kendall'])}, top-1 {format_number(o['top1'])}, top-5 {format_number(o['top5'])} (over "
                 f"{o['n_ranked_tasks']} task(s) with 2 or more programs); spread {format_number(o.get('spread'))} (median)")
    header = ("task", "records", "programs", "MAPE", "RMSE (ms)", "Spearman", "Kendall", "top-1", "top-5", "spread")
    rows = [(str(t["task"]), str(t["n_records"]), str(t["n_programs"]), format_percent(t["mape"]), f"{t['rmse']:.4g}", format_number(t["spearman"]),
             format_number(t["kendall"]), format_number(t["top1"]), format_number(t["top5"]),
             format_number(t.get("spread"))) for t in result["per_task"]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def format_percent(x: float | None) -> str:
    """A fraction as a percentage with one decimal ('n/a' for None or NaN): the tables' MAPE."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def format_number(x: float | None) -> str:
    """A metric with three decimals ('n/a' for None or NaN): the tables' Spearman, Kendall, top-k."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def task_labels(task_keys: np.ndarray, task_names: dict[str, str], device_names: np.ndarray | None = None) -> np.ndarray:
    """A readable label per record: its task's name, with the key's first 8 characters appended when
    two different tasks (keys) share a name, so that labels still identify tasks one to one. With
    ``device_names`` ((N,) device of each record) naming more than one device, " @ <device>" is appended:
    a task measured on two CPUs is two groups, since a tuner ranks programs on one device only."""
    keys = sorted(set(np.asarray(task_keys).tolist()))
    names = {k: task_names.get(k, k) for k in keys}
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    label = {k: f"{n} [{k[:8]}]" if n in shared else n for k, n in names.items()}
    labels = [label[k] for k in np.asarray(task_keys).tolist()]
    if device_names is not None and len(set(np.asarray(device_names).tolist())) > 1:
        labels = [f"{lab} @ {dev}" for lab, dev in zip(labels, np.asarray(device_names).tolist(), strict=True)]
    return np.asarray(labels, dtype=str)
