"""Exploration for ``CDMPPCostModel(explore=...)``: Thompson-sampling noise on the predicted latencies.

Each predicted latency is multiplied by exp(sigma x z), z standard normal per candidate and predict call, so
a task whose measurements the chosen model ranks poorly is explored, one it ranks well barely changes, and a
task with nothing measured yet follows the prior. sigma (``Exploration.sigma``) is ``explore`` times:

* ``explore_by="ranking"``: ``thompson_noise_ratio`` of the chosen model's pairwise accuracy on the task's
  fresh batches (the guard's) times the spread of its predicted log latencies on those batches (the range
  the accuracy was measured in: the top of its own ranking, so the noise reshuffles programs near the top
  that it cannot tell apart);
* ``explore_by="residual"`` (stop 34's version, bench model ``cdmpp-explore``): the chosen model's spread of
  log(measured / predicted) on the task's fresh batches. It is not ranking quality: a model can rank a task
  well while its errors spread wide, where the task's latencies spread wider still.

Neither beat plain ``cdmpp`` in the search benchmark (benchmarks/results/experiments.md, stops 34 and 35), so
``explore`` defaults to 0.
"""
from __future__ import annotations

import numpy as np

from .online import moving_average

EXPLORE_BY = ("ranking", "residual")


class FreshBatchSpread:
    """How spread each model's predictions, and its errors beyond a constant factor, were on a task's fresh
    batches: the two scales of ``CDMPPCostModel(explore=...)``'s Thompson-sampling noise.

    Per task and model, moving averages (``momentum``) over a fresh batch's labelled programs of the
    standard deviation of log(predicted) (``predicted``: the spread within which the guard's pairwise
    accuracy was measured) and of log(measured / predicted) (``residual``; the mean is left out because a
    constant factor, what ``LatencyCalibration`` corrects, changes no ranking). A model with no fresh batch
    of its own on the task yet (the boosted learner right after its first fit) is given the pretrained
    model's spreads there: it starts from that model's predictions."""

    def __init__(self, momentum: float):
        self.momentum = momentum
        self.per_task: dict[str, dict[str, dict[str, float]]] = {}  # task -> "predicted"/"residual" -> model -> std

    def track(self, task: str, predictions: dict[str, np.ndarray], labels: np.ndarray) -> None:
        """Predictions (seconds, name -> (N,)) of the same fresh programs and their labels (N,) in seconds."""
        if len(labels) < 2:
            return
        mine = self.per_task.setdefault(task, {"predicted": {}, "residual": {}})
        for name, pred in predictions.items():
            log_pred = np.log(np.maximum(pred, 1e-12))
            r = np.log(labels) - log_pred
            ok = np.isfinite(r)
            if ok.sum() < 2:
                continue
            moving_average(mine["predicted"], name, float(np.std(log_pred[ok])), self.momentum)
            moving_average(mine["residual"], name, float(np.std(r[ok])), self.momentum)

    def predicted(self, task: str, name: str) -> float:
        """Spread of ``name``'s predicted log latencies on ``task``'s fresh batches (see ``residual``)."""
        return self._get(task, "predicted", name)

    def residual(self, task: str, name: str) -> float:
        """Spread of ``name``'s log errors on ``task``; the pretrained model's when ``name`` has none; 0 when
        the task has no fresh batch yet (nothing says the prior is wrong there)."""
        return self._get(task, "residual", name)

    def _get(self, task: str, kind: str, name: str) -> float:
        spreads = self.per_task.get(task, {}).get(kind, {})
        return spreads.get(name, spreads.get("anchor", 0.0))


def thompson_noise_ratio(pairwise_acc: float, min_correlation: float = 0.05) -> float:
    """sqrt(1 - rho^2) / rho, rho = sin(pi / 2 x (2 x ``pairwise_acc`` - 1)), at least ``min_correlation``.

    Why: model the standardized predicted and true log latencies of a task's programs as bivariate normal
    with correlation rho. A pairwise ranking accuracy a is Kendall's tau = 2a - 1, and for a bivariate
    normal tau = (2 / pi) arcsin(rho) (Greiner's relation). Given a prediction f, the true value is then
    N(rho f, 1 - rho^2); ranking by a draw (Thompson sampling) ranks as f + (sqrt(1 - rho^2) / rho) z,
    z standard normal: no noise for a model that ranks perfectly, ever more (the scores of a random
    search) as its accuracy falls to chance. An accuracy at or below chance gives ``min_correlation``."""
    tau = min(max(2.0 * float(pairwise_acc) - 1.0, 0.0), 1.0)
    rho = max(np.sin(np.pi / 2.0 * tau), min_correlation)
    return float(np.sqrt(max(1.0 - rho * rho, 0.0)) / rho)


class Exploration:
    """The noise of ``CDMPPCostModel(explore=scale, explore_by=by)`` (module docstring), with its own random
    stream, so that online training samples as it would without it."""

    def __init__(self, scale: float, by: str, momentum: float, seed: int):
        if not scale >= 0:
            raise ValueError(f"CDMPPCostModel: explore must be >= 0, got {scale!r}")
        if by not in EXPLORE_BY:
            raise ValueError(f"CDMPPCostModel: explore_by must be one of {EXPLORE_BY}, got {by!r}")
        self.scale = float(scale)
        self.by = by
        self.spread = FreshBatchSpread(momentum)
        self.rng = np.random.default_rng([seed, 1])

    def track(self, task: str, predictions: dict[str, np.ndarray], labels: np.ndarray) -> None:
        """A fresh batch's predictions and labels (``FreshBatchSpread.track``); nothing with exploration off."""
        if self.scale > 0:
            self.spread.track(task, predictions, labels)

    def sigma(self, task: str, name: str, accuracy: float | None) -> float:
        """Noise std on log latency for model ``name`` on ``task``, whose fresh-batch pairwise accuracy
        there is ``accuracy`` (None: none yet); 0 when exploration is off or the task has no fresh batch."""
        if self.scale == 0:
            return 0.0
        if self.by == "residual":
            return self.scale * self.spread.residual(task, name)
        if accuracy is None:
            return 0.0
        return self.scale * self.spread.predicted(task, name) * thompson_noise_ratio(accuracy)

    def perturb(self, latency: np.ndarray, task: str, name: str, accuracy: float | None) -> tuple[np.ndarray, bool]:
        """(latencies (N,) with the noise applied, whether any was)."""
        sigma = self.sigma(task, name, accuracy)
        if sigma <= 0:
            return latency, False
        return latency * np.exp(sigma * self.rng.standard_normal(len(latency))), True
