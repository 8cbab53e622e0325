"""XGBoost baseline: MetaSchedule's ``XGBModel`` recipe, predicting absolute latency.

As in MetaSchedule (``tvm.s_tir.meta_schedule.cost_model.xgb_model``): the input of a program is its
``PerStoreFeature`` rows; a boosted tree ensemble scores every row and a program's prediction is a
**sum over its rows** ("pack-sum", trained through a custom squared-error objective on the program's
prediction); parameters max_depth 10, eta 0.2, min_child_weight 0, gamma 0.001, seed 43, up to 10,000
rounds, early stopping after 50 rounds without improvement.

What differs, and why:

* **Label.** MetaSchedule learns y = (fastest latency of the task) / latency, a throughput normalized
  per task, weighted by y. That needs the fastest latency of the task, which is unknown for an unseen
  task, so it cannot give a latency (nor a MAPE) at test time. Here a row's score is the log of the
  row's share of the latency, and the program's **latency (seconds) = sum over rows of
  exp(intercept + row score)**; the loss is the squared error of ln(latency). Time adds up over the
  loop nests that write buffers, and ln keeps tasks of 4 us and of 2 s on one scale (a relative
  error). xgboost's own base score is 0 (it would be added once *per row*); ``intercept`` starts each
  row at an equal share of its program's mean latency.

  Chosen by measurement on the bootstrap dataset (``data/bootstrap-cpu-znver1``, 22 tasks; 5 random
  splits holding out 6 whole tasks each; means over the splits of the test metrics):

  ====================================================================  =====  ========  =====  =====
  label (program prediction)                                            MAPE   Spearman  top-1  top-5
  ====================================================================  =====  ========  =====  =====
  ln latency = ln(sum over rows of exp(row score)) (used)               1.68   0.49      0.59   0.78
  ln latency = sum of row scores                                        1.58   0.47      0.58   0.80
  latency in us = sum of row scores, squared error                      25.8   0.18      0.39   0.64
  latency in us = sum of row scores, relative error (1/latency^2 wts)   2.00   0.25      0.44   0.71
  ====================================================================  =====  ========  =====  =====

  On latency itself the slow programs of slow tasks dominate the squared error; relative weights put
  the errors on one scale but still rank worse. The two ln-latency forms tie on this data; the sum
  of row scores in ln space, however, multiplies latencies across rows, so it cannot fit programs
  whose number of similar rows varies: on ``tests/test_evaluation.py``'s synthetic programs (latency
  = a sum over 1-3 rows) its Spearman on held-out tasks was 0.04, against 0.88 for the sum of exp.
* **Early stopping** watches the RMSE of ln latency on a validation set of whole training tasks
  (``val_fraction``), not the training RMSE.
* Programs without feature rows are left out of training; ``predict`` gives them exp(intercept).
* **Hessian = the row's share s, not the Gauss-Newton s^2** (``_PackedPrograms.squared_error``). With
  s^2 and MetaSchedule's min_child_weight 0, a leaf reached only by rows with a tiny share of their
  program's latency took a value of residual / s (a training row scored 1.2e13 in a k-fold fold, stop
  27; 123 of that fold's 7,774 held-out programs were predicted to run longer than 1e300 s), and early
  stopping ended most fits after 1-50 rounds. On the five folds of the CPU generalization protocol
  (stop 28, ``benchmarks/results/experiments.md``) s instead of s^2 raised Spearman on every fold
  (mean 0.475 -> 0.565), top-1 on every fold (0.543 -> 0.634), and lowered MAPE on 4 of 5.
* **Row scores are clipped** at prediction: above, to the slowest training program's ln latency (a
  row's share of a program's latency cannot exceed the program's); below, to the lowest score of a
  training row: a guard against trees far outside their training data. Clipped rows are counted
  (``last_clipped_rows``) and logged.
"""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np
import xgboost as xgb

from ..atomic_io import atomic_path
from ..data.dataset import split_by_group
from ._programs import check_programs, check_targets, pack

# MetaSchedule's XGBConfig defaults (xgb_model.py).
METASCHEDULE_PARAMS = {"max_depth": 10, "gamma": 0.001, "min_child_weight": 0, "eta": 0.2, "seed": 43}

logger = logging.getLogger(__name__)


class XGBBaseline:
    """Pack-sum gradient-boosted trees on PerStoreFeature rows -> latency (seconds).

    ``fit(X, latency_s, groups)``: X is a list of N arrays (n_rows_i, n_features), one per program (rows
    may be zero); latency_s (N,) seconds > 0; groups (N,) task of each program (validation holds out
    whole tasks). ``predict(X) -> (N,)`` seconds > 0.
    """

    def __init__(self, max_rounds: int = 10000, early_stopping_rounds: int = 50, val_fraction: float = 0.15,
                 n_threads: int | None = None, seed: int = 0, params: dict | None = None):
        self.max_rounds = max_rounds
        self.early_stopping_rounds = early_stopping_rounds
        self.val_fraction = val_fraction
        self.n_threads = n_threads
        self._nthread_set = (None, None)  # (booster, n_threads) that predict last applied nthread to
        self.seed = seed  # of the validation split; the trees use MetaSchedule's seed 43
        self.params = {**METASCHEDULE_PARAMS, **(params or {})}
        self.booster: xgb.Booster | None = None
        self.intercept = 0.0
        self.row_score_range: tuple[float, float] | None = None  # clip of row scores (docstring); None: none
        self.last_clipped_rows = 0  # rows of the last predict() clipped into row_score_range
        self.n_features_in_: int | None = None
        self.history: dict = {}

    def fit(self, X, latency_s, groups=None) -> "XGBBaseline":
        programs = check_programs(X, who="XGBBaseline.fit")
        latency_s, groups = check_targets(programs, latency_s, groups, who="XGBBaseline.fit")
        self.n_features_in_ = programs[0].shape[1]
        n_rows = np.array([len(x) for x in programs])
        has_rows = np.nonzero(n_rows > 0)[0]  # a program without rows gives the trees nothing to learn from
        if len(has_rows) == 0:
            raise ValueError("XGBBaseline.fit: no program has a feature row")
        y = np.log(latency_s)
        tr, va = split_by_group(groups[has_rows], self.val_fraction, self.seed)
        tr, va = has_rows[tr], has_rows[va]
        if len(va) == 0:  # one task only: stop on the training loss, as MetaSchedule does
            va = tr
        # Row score 0 = an equal share of the program's latency: intercept = mean ln(latency / n_rows).
        self.intercept = float(np.mean(y[tr] - np.log(n_rows[tr])))
        train = _PackedPrograms([programs[i] for i in tr], y[tr] - self.intercept)
        val = _PackedPrograms([programs[i] for i in va], y[va] - self.intercept)
        params = {**self.params, "base_score": 0.0, "disable_default_eval_metric": 1}
        if self.n_threads is not None:
            params["nthread"] = self.n_threads
        start = time.perf_counter()
        booster = xgb.train(params, train.dmatrix, num_boost_round=self.max_rounds, obj=train.squared_error,
                            evals=[(val.dmatrix, "val")], custom_metric=val.rmse,
                            early_stopping_rounds=self.early_stopping_rounds, verbose_eval=False)
        self.booster = booster[: booster.best_iteration + 1]  # keep the trees up to the best validation round
        high = float(np.max(y[tr]) - self.intercept)  # the slowest training program, in row-score units
        self.row_score_range = (min(float(self.booster.predict(train.dmatrix).min()), high), high)
        self.history = {"rounds": booster.best_iteration + 1, "val_rmse": float(booster.best_score),
                        "seconds": time.perf_counter() - start, "n_train": len(tr), "n_val": len(va)}
        return self

    def predict(self, X) -> np.ndarray:
        """(N,) latency in seconds; a program without feature rows gets exp(intercept), a typical row's latency."""
        if self.booster is None:
            raise RuntimeError("XGBBaseline.predict: call fit or load first")
        programs = check_programs(X, self.n_features_in_, who="XGBBaseline.predict")
        data = _PackedPrograms(programs)
        # A loaded model predicts on xgboost's default (all cores) otherwise; set once per booster and thread count.
        applied_to, applied = self._nthread_set
        if self.n_threads is not None and (applied_to is not self.booster or applied != self.n_threads):
            self.booster.set_param({"nthread": self.n_threads})
            self._nthread_set = (self.booster, self.n_threads)
        scores = self.booster.predict(data.dmatrix)
        if self.row_score_range is not None:
            low, high = self.row_score_range
            self.last_clipped_rows = int(np.count_nonzero((scores < low) | (scores > high)))
            if self.last_clipped_rows:
                logger.info("XGBBaseline.predict: %d of %d row scores outside [%.3g, %.3g] (lowest training row, "
                            "slowest training program); clipped", self.last_clipped_rows, len(scores), low, high)
            scores = np.clip(scores, low, high)
        log_latency = data.log_sum_exp(scores)
        return np.exp(self.intercept + np.where(np.isfinite(log_latency), log_latency, 0.0))

    def save(self, path: str | os.PathLike) -> None:
        """One xgboost JSON model file (whatever the suffix); intercept, feature width and training
        history are stored in it as booster attributes."""
        self._set_attributes("XGBBaseline.save")
        with atomic_path(path) as tmp:  # same suffix: xgboost picks the format (JSON for .json) by it
            self.booster.save_model(tmp)

    def to_bytes(self) -> bytes:
        """The fitted model as xgboost's UBJSON bytes, with the attributes ``save`` writes (for a model held
        inside another file, e.g. a checkpoint's tree head)."""
        self._set_attributes("XGBBaseline.to_bytes")
        return bytes(self.booster.save_raw(raw_format="ubj"))

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "bytes") -> "XGBBaseline":
        """The model ``to_bytes`` gave; ValueError naming ``source`` if the bytes are not one."""
        try:
            booster = xgb.Booster(model_file=bytearray(raw))
        except xgb.core.XGBoostError as e:
            raise ValueError(f"{source}: not an xgboost model: {e}") from e
        return cls._from_booster(booster, source)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "XGBBaseline":
        return cls._from_booster(xgb.Booster(model_file=str(path)), str(path))

    @classmethod
    def _from_booster(cls, booster: xgb.Booster, source: str) -> "XGBBaseline":
        model = cls()
        model.booster = booster
        if booster.attr("cdmpp_intercept") is None:
            raise ValueError(f"{source}: not an XGBBaseline model (no cdmpp_intercept attribute)")
        model.intercept = float(booster.attr("cdmpp_intercept"))
        model.n_features_in_ = int(booster.attr("cdmpp_n_features"))
        model.history = json.loads(booster.attr("cdmpp_history") or "{}")
        score_range = json.loads(booster.attr("cdmpp_row_score_range") or "null")
        model.row_score_range = None if score_range is None else (float(score_range[0]), float(score_range[1]))
        return model

    def _set_attributes(self, who: str) -> None:
        if self.booster is None:
            raise RuntimeError(f"{who}: nothing fitted")
        self.booster.set_attr(cdmpp_intercept=repr(self.intercept), cdmpp_n_features=str(self.n_features_in_),
                              cdmpp_history=json.dumps(self.history),
                              cdmpp_row_score_range=json.dumps(self.row_score_range))


class _PackedPrograms:
    """Rows of many programs in one DMatrix. A row's latency is exp(its score); a program's is the sum
    of its rows' latencies, so its ln latency is the log-sum-exp of its row scores."""

    def __init__(self, programs: list[np.ndarray], y: np.ndarray | None = None):
        rows, self.ids = pack(programs)
        self.n_programs = len(programs)
        self.y = y  # ln latency - intercept, per program
        self.dmatrix = xgb.DMatrix(rows)

    def log_sum_exp(self, row_scores: np.ndarray) -> np.ndarray:
        """(n_programs,) ln(sum over the program's rows of exp(score)); -inf for a program without rows."""
        peak = np.full(self.n_programs, -np.inf)
        np.maximum.at(peak, self.ids, row_scores)
        peak = np.where(np.isfinite(peak), peak, 0.0)  # subtracted for stability
        total = np.bincount(self.ids, weights=np.exp(row_scores - peak[self.ids]), minlength=self.n_programs)
        with np.errstate(divide="ignore"):
            return peak + np.log(total)

    def squared_error(self, row_scores: np.ndarray, _dmatrix) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and a diagonal Hessian bound of 0.5 * (ln program latency - y)^2 for each row score:
        with s = the row's share of its program's latency, d/d(score) = residual * s. The Hessian used is
        s, not the Gauss-Newton s^2: the Hessian of log-sum-exp is diag(s) - s s^T <= diag(s), so s bounds
        the curvature, and a leaf's value -sum(g)/sum(h) is then a share-weighted mean residual, never
        larger than the largest residual. With s^2 a leaf of rows with tiny shares took residual / s."""
        log_latency = self.log_sum_exp(row_scores)
        share = np.exp(row_scores - log_latency[self.ids])
        residual = (log_latency - self.y)[self.ids]
        return residual * share, np.maximum(share, 1e-6)

    def rmse(self, row_scores: np.ndarray, _dmatrix) -> tuple[str, float]:
        return "rmse", float(np.sqrt(np.mean((self.log_sum_exp(row_scores) - self.y) ** 2)))
