"""Prediction accuracy of CDMPP vs the XGB and MLP baselines on one train/test split (the core of
benchmarks/accuracy.py and benchmarks/kfold.py).

The CDMPP checkpoint is trained beforehand on the split's train part; here the two baselines are trained
on the same train part (MetaSchedule's PerStoreFeature rows, timed) and all three predict the test part.
Every model is scored on the same test records (those both feature kinds could featurize) with
``cdmpp_tvm.evaluation.compute_metrics``. A task measured on several devices is ranked per device
(``task_labels``). The baselines see no device input: on a multi-device split they predict one latency
per program for every device.

A prediction that is not a finite latency > 0 (an overflow of exp on a program far outside the training
data) is set to ``PREDICTION_RANGE_S``'s nearest end, so that it costs the model a large error instead of
stopping the benchmark; how many were is said and kept (``SplitScores.n_out_of_range``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..baselines import MLPConfig, SegmentSumMLP, XGBBaseline
from ..data.dataset import TrainingData
from ..data.feature_cache import (COMPACT_AST, PER_STORE, CachedFeatures, load_cached_features, same_records,
                                   to_training_data)
from ..errors import UserError
from ..evaluation import compute_metrics, format_number, format_percent, program_keys, task_labels
from ..model.checkpoint import Checkpoint

MODELS = ("CDMPP", "XGB", "MLP")
# The metrics the accuracy reports give for each model (``compute_metrics``'s "overall" keys).
METRICS = ("mape", "spearman", "kendall", "top1", "top5", "spread")
METRIC_LABELS = {"mape": "MAPE", "spearman": "Spearman", "kendall": "Kendall", "top1": "top-1", "top5": "top-5",
                 "spread": "spread"}


def read_fold_results(out_dir: str | Path, name: str, folds: list[str] | None = None) -> dict[str, dict]:
    """{fold: result} of the k-fold run ``name``, as ``benchmarks/kfold.py`` wrote them
    (``OUT/kfold-NAME/<fold>.json``): every fold scored so far, or those of ``folds``. UserError when the
    run has none or a named fold is missing."""
    run_dir = Path(out_dir) / f"kfold-{name}"
    files = sorted(run_dir.glob("fold-*.json")) if folds is None else [run_dir / f"{f}.json" for f in folds]
    if not files:
        raise UserError(f"{run_dir}: no fold results (run benchmarks/kfold.py --name {name})")
    for f in files:
        if not f.is_file():
            raise UserError(f"{f}: no such fold result (run benchmarks/kfold.py --name {name} --folds {f.stem})")
    return {f.stem: json.loads(f.read_text()) for f in files}


# Latencies a prediction is clipped to (seconds): far outside any measured program (~1 us .. 10 s).
PREDICTION_RANGE_S = (1e-9, 1e4)


@dataclass
class SplitScores:
    """What ``score_split`` measured. ``true_s``: (N,) measured test latencies (s); ``predictions``:
    {model: (N,) predicted latencies}; ``results``: {model: ``compute_metrics`` result}; ``train_seconds``:
    {model: seconds or None} (CDMPP's as recorded in its checkpoint); ``counts``: records and tasks of
    each part; ``left_out``: test records only one feature kind could featurize (not scored);
    ``n_out_of_range``: {model: predictions clipped into PREDICTION_RANGE_S}."""

    true_s: np.ndarray
    predictions: dict[str, np.ndarray]
    results: dict[str, dict]
    train_seconds: dict[str, float | None]
    counts: dict[str, int]
    left_out: int
    n_out_of_range: dict[str, int]


@dataclass
class SplitData:
    """The records of one train/test split, loaded from the feature caches. ``train``: per-store features
    of the train part; ``test_rows`` / ``test_data``: the test records both feature kinds could featurize
    (per-store rows; compact ASTs as TrainingData); ``groups``: (N,) ranking group of each test record (a
    task per device); ``programs``: (N,) program key of each; ``left_out``: test records only one kind
    could featurize; ``counts``: records and tasks of each part."""

    train: CachedFeatures
    test_rows: CachedFeatures
    test_data: TrainingData
    groups: np.ndarray
    programs: np.ndarray
    left_out: int
    counts: dict[str, int]

    @property
    def true_s(self) -> np.ndarray:
        return self.test_rows.latencies


def load_split(train_dirs: list[Path], test_dirs: list[Path], say=print) -> SplitData:
    """Load a split's feature caches. Raises UserError when a part has no valid record."""
    train, _ = load_cached_features(train_dirs, PER_STORE)
    test_rows, facts = load_cached_features(test_dirs, PER_STORE)
    test_asts, _ = load_cached_features(test_dirs, COMPACT_AST)
    test_rows, test_asts, left_out = same_records(test_rows, test_asts)
    if len(train) == 0 or len(test_rows) == 0:
        raise UserError(f"{len(train)} training and {len(test_rows)} test records; need both")
    groups = task_labels(test_rows.groups, facts["task_names"], test_rows.device_names)
    test_data = to_training_data(test_asts)
    counts = {"n_train_records": len(train), "n_train_tasks": len(np.unique(train.groups)),
              "n_test_records": len(test_rows), "n_test_tasks": len(np.unique(test_rows.groups)),
              "n_test_groups": len(np.unique(groups))}
    say(f"train: {counts['n_train_records']} records of {counts['n_train_tasks']} tasks; test: "
        f"{counts['n_test_records']} records of {counts['n_test_tasks']} tasks", flush=True)
    # Single-program tasks are left out of the ranking metrics by their program keys.
    return SplitData(train, test_rows, test_data, groups, program_keys(test_data.asts), left_out, counts)


def baseline_predictions(split: SplitData, names: tuple[str, ...] = ("XGB", "MLP"), threads: int | None = None,
                         mlp_time_limit_s: float | None = None, say=print) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Train the named baselines on ``split``'s train part and predict its test part: ({name: (N,) latency
    in seconds, unclipped}, {name: training seconds})."""
    makers = {"XGB": lambda: XGBBaseline(n_threads=threads),
              "MLP": lambda: SegmentSumMLP(MLPConfig(time_limit_s=mlp_time_limit_s), n_threads=threads)}
    predictions, train_seconds = {}, {}
    for name in names:
        model = makers[name]()
        start = time.perf_counter()
        model.fit(split.train.rows["features"], split.train.latencies, split.train.groups)
        train_seconds[name] = time.perf_counter() - start
        predictions[name] = model.predict(split.test_rows.rows["features"])
        say(f"{name}: trained in {train_seconds[name]:.1f} s", flush=True)
    return predictions, train_seconds


def score_split(train_dirs: list[Path], test_dirs: list[Path], checkpoint: Checkpoint, threads: int | None = None,
                mlp_time_limit_s: float | None = None, say=print) -> SplitScores:
    """Train XGB and MLP on ``train_dirs``, predict ``test_dirs`` with them and with ``checkpoint`` (trained
    on the same train part elsewhere), and score all three. Raises UserError when a part has no valid record."""
    split = load_split(train_dirs, test_dirs, say)
    predictions = {"CDMPP": checkpoint.predict_latency_s(split.test_data.asts, split.test_data.device)}
    train_seconds = {"CDMPP": checkpoint.info.get("history", {}).get("seconds")}
    baselines, baseline_seconds = baseline_predictions(split, ("XGB", "MLP"), threads, mlp_time_limit_s, say)
    predictions.update(baselines)
    train_seconds.update(baseline_seconds)

    n_out_of_range = {}
    for name in MODELS:
        predictions[name], n_out_of_range[name] = clip_predictions(predictions[name])
        if n_out_of_range[name]:
            say(f"{name}: {n_out_of_range[name]} of {len(split.true_s)} predictions were not finite latencies in "
                f"{PREDICTION_RANGE_S} s; clipped into it", flush=True)
    results = {name: compute_metrics(predictions[name], split.true_s, split.groups, split.programs) for name in MODELS}
    return SplitScores(split.true_s, predictions, results, train_seconds, split.counts, split.left_out, n_out_of_range)


def format_metric(metric: str, x: float | None) -> str:
    """A metric's table cell: MAPE as a percentage, the others with 3 decimals; None -> n/a."""
    return format_percent(x) if metric == "mape" else format_number(x)


def improvement(metric: str, base: float, new: float) -> float:
    """How much better NEW is than BASE on ``metric`` (> 0: better): BASE - NEW for MAPE, |ln BASE| -
    |ln NEW| for the spread (1 is right), NEW - BASE for the ranking metrics."""
    if metric == "mape":
        return base - new
    if metric == "spread":
        return abs(math.log(max(base, 1e-12))) - abs(math.log(max(new, 1e-12)))  # 0: constant predictions
    return new - base


def clip_predictions(pred_s: np.ndarray) -> tuple[np.ndarray, int]:
    """-> (predictions with every value that is NaN or outside PREDICTION_RANGE_S set to the range's
    nearest end (NaN: the upper end), how many were)."""
    pred = np.asarray(pred_s, dtype=np.float64)
    low, high = PREDICTION_RANGE_S
    bad = ~((pred >= low) & (pred <= high))  # NaN fails both comparisons
    return np.where(np.isnan(pred), high, np.clip(pred, low, high)), int(bad.sum())
