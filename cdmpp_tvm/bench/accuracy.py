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

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..baselines import MLPConfig, SegmentSumMLP, XGBBaseline
from ..data.feature_cache import COMPACT_AST, PER_STORE, load_cached_features, same_records, to_training_data
from ..errors import UserError
from ..evaluation import compute_metrics, program_keys, task_labels
from ..model.checkpoint import Checkpoint

MODELS = ("CDMPP", "XGB", "MLP")
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


def score_split(train_dirs: list[Path], test_dirs: list[Path], checkpoint: Checkpoint, threads: int | None = None,
                mlp_time_limit_s: float | None = None, say=print) -> SplitScores:
    """Train XGB and MLP on ``train_dirs``, predict ``test_dirs`` with them and with ``checkpoint`` (trained
    on the same train part elsewhere), and score all three. Raises UserError when a part has no valid record."""
    train, _ = load_cached_features(train_dirs, PER_STORE)
    test_rows, facts = load_cached_features(test_dirs, PER_STORE)
    test_asts, _ = load_cached_features(test_dirs, COMPACT_AST)
    test_rows, test_asts, left_out = same_records(test_rows, test_asts)
    if len(train) == 0 or len(test_rows) == 0:
        raise UserError(f"{len(train)} training and {len(test_rows)} test records; need both")
    true_s = test_rows.latencies
    groups = task_labels(test_rows.groups, facts["task_names"], test_rows.device_names)
    counts = {"n_train_records": len(train), "n_train_tasks": len(np.unique(train.groups)),
              "n_test_records": len(true_s), "n_test_tasks": len(np.unique(test_rows.groups)),
              "n_test_groups": len(np.unique(groups))}
    say(f"train: {counts['n_train_records']} records of {counts['n_train_tasks']} tasks; test: "
        f"{counts['n_test_records']} records of {counts['n_test_tasks']} tasks", flush=True)

    test_data = to_training_data(test_asts)
    predictions = {"CDMPP": checkpoint.predict_latency_s(test_data.asts, test_data.device)}
    train_seconds = {"CDMPP": checkpoint.info.get("history", {}).get("seconds")}
    X = train.rows["features"]
    for name, model in (("XGB", XGBBaseline(n_threads=threads)),
                        ("MLP", SegmentSumMLP(MLPConfig(time_limit_s=mlp_time_limit_s), n_threads=threads))):
        start = time.perf_counter()
        model.fit(X, train.latencies, train.groups)
        train_seconds[name] = time.perf_counter() - start
        predictions[name] = model.predict(test_rows.rows["features"])
        say(f"{name}: trained in {train_seconds[name]:.1f} s", flush=True)

    n_out_of_range = {}
    for name in MODELS:
        predictions[name], n_out_of_range[name] = clip_predictions(predictions[name])
        if n_out_of_range[name]:
            say(f"{name}: {n_out_of_range[name]} of {len(true_s)} predictions were not finite latencies in "
                f"{PREDICTION_RANGE_S} s; clipped into it", flush=True)
    programs = program_keys(test_data.asts)  # single-program tasks are left out of the ranking metrics
    results = {name: compute_metrics(predictions[name], true_s, groups, programs) for name in MODELS}
    return SplitScores(true_s, predictions, results, train_seconds, counts, left_out, n_out_of_range)


def clip_predictions(pred_s: np.ndarray) -> tuple[np.ndarray, int]:
    """-> (predictions with every value that is NaN or outside PREDICTION_RANGE_S set to the range's
    nearest end (NaN: the upper end), how many were)."""
    pred = np.asarray(pred_s, dtype=np.float64)
    low, high = PREDICTION_RANGE_S
    bad = ~((pred >= low) & (pred <= high))  # NaN fails both comparisons
    return np.where(np.isnan(pred), high, np.clip(pred, low, high)), int(bad.sum())
