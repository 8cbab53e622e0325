"""The losses of the CDMPP predictor: MSE + pairwise ranking within a task (``regression_loss``), the
MAPE of the latency in seconds (``mape_loss``) and the central moment discrepancy between two domains'
program embeddings (``central_moment_discrepancy``). ``ranking_pair_losses`` is the one ranking loss,
used by ``regression_loss`` on a batch and by ``cdmpp_tvm.training.evaluate`` task by task."""
from __future__ import annotations

import torch

from .label_transform import LabelTransform


def ranking_pair_losses(pred: torch.Tensor, y: torch.Tensor, group_ids: torch.Tensor | None = None,
                        temperature: float = 0.0) -> torch.Tensor:
    """The pairwise logistic loss of every pair (i, j) with |y_i - y_j| > 1e-3 (and, with ``group_ids``,
    of the same group), as a 1-d tensor (empty: no pair). With dy = y_i - y_j, dp = pred_i - pred_j:

    * ``temperature`` 0 (RankNet with hard targets): softplus(-sign(dy) * dp). It keeps falling as |dp|
      grows past |dy|, so next to an MSE term it stretches the predictions of a task apart: the bundled
      checkpoint's within-task spread of ln(latency) is 1.2-1.3x the true one (experiments.md, stop 27).
    * ``temperature`` t > 0 (RankNet with graded targets): t * KL(Bernoulli(sigmoid(dy / t)) ||
      Bernoulli(sigmoid(dp / t))), >= 0 and 0 exactly at dp = dy, so it asks for the true gaps, not
      larger ones. Its gradient in dp is sigmoid(dp / t) - sigmoid(dy / t), within (-1, 1) like the hard
      loss's; a small t pushes misordered near-ties apart nearly as hard as the hard loss does.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature!r}")
    dy = y.unsqueeze(0) - y.unsqueeze(1)
    pairs = dy.abs() > 1e-3
    if group_ids is not None:
        pairs = (group_ids.unsqueeze(0) == group_ids.unsqueeze(1)) & pairs
    dp = pred.unsqueeze(0) - pred.unsqueeze(1)
    if temperature == 0:
        return torch.nn.functional.softplus(-torch.sign(dy[pairs]) * dp[pairs])
    d, t = dp[pairs] / temperature, dy[pairs] / temperature
    target = torch.sigmoid(t)
    softplus = torch.nn.functional.softplus
    # Cross-entropy minus the target's entropy: the KL divergence, 0 at d = t.
    return temperature * ((softplus(d) - target * d) - (softplus(t) - target * t))


def regression_loss(pred: torch.Tensor, y: torch.Tensor, group_ids: torch.Tensor, rank_weight: float,
                    rank_temperature: float = 0.0) -> torch.Tensor:
    """MSE + rank_weight * mean pairwise logistic loss (``ranking_pair_losses`` with ``rank_temperature``)
    over pairs of the same group with different y."""
    loss = torch.mean((pred - y) ** 2)
    if rank_weight > 0:
        pair_losses = ranking_pair_losses(pred, y, group_ids, rank_temperature)
        if pair_losses.numel():
            loss = loss + rank_weight * pair_losses.mean()
    return loss


# Predictions are clamped to this many standard deviations of the training labels before they are turned
# into seconds, so that an untrained model's wild outputs give a large but finite MAPE.
MAPE_PRED_CLAMP = 10.0


def mape_loss(pred: torch.Tensor, latency_s: torch.Tensor, label_transform: LabelTransform) -> torch.Tensor:
    """Mean |predicted - true| / true latency, in seconds; ``pred`` in the label-transform space.
    Computed in float64 and differentiable through the inverse label transform."""
    pred_s = label_transform.inverse_torch(pred.double().clamp(-MAPE_PRED_CLAMP, MAPE_PRED_CLAMP))
    lat = latency_s.double()
    return (torch.abs(pred_s - lat) / lat).mean()


def central_moment_discrepancy(x: torch.Tensor, y: torch.Tensor, k: int = 5) -> torch.Tensor:
    """CMD (Zellinger et al. 2017) between samples x (n, d) and y (m, d), moments 1..k, scale 1:
    ||mean x - mean y||_2 + sum_{j=2..k} ||E (x - mean x)^j - E (y - mean y)^j||_2."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = x - mx, y - my
    d = torch.linalg.vector_norm(mx - my)
    for j in range(2, k + 1):
        d = d + torch.linalg.vector_norm((cx ** j).mean(0) - (cy ** j).mean(0))
    return d
