"""Search benchmark settings: the cost models it can compare, trial budgets, search settings, seeds."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UserError

MODELS = ("cdmpp", "cdmpp-sharp", "cdmpp-explore", "cdmpp-explore-ranking", "cdmpp-scratch", "xgb", "random")
# "cdmpp-sharp": cdmpp with this score exponent (CDMPPCostModel.score_exponent: mutation goes to the programs
# predicted fast; the programs measured, the top-scored by rank, are chosen as with cdmpp).
SHARP_SCORE_EXPONENT = 4.0
# "cdmpp-explore": cdmpp with Thompson-sampling noise of this scale on its scores (CDMPPCostModel.explore: the
# noise is the model's own spread of log(measured / predicted) on the task's fresh batches, times this: stop 34's
# version, explore_by="residual"); "cdmpp-explore-ranking": the same scale with the noise set by the model's
# fresh-batch ranking accuracy on the task (explore_by="ranking").
EXPLORE_SCALE = 1.0


@dataclass
class SearchBenchConfig:
    models: tuple[str, ...] = ("cdmpp", "cdmpp-scratch", "xgb", "random")
    trials: int = 256  # measured trials per task
    trials_per_iter: int = 32
    population_size: int = 512
    seeds: tuple[int, ...] = (0, 1)
    checkpoint: str | None = None  # for "cdmpp"; None = the bundled checkpoint for the target
    budgets: tuple[int, ...] = (64, 128, 256)  # trials per task at which the summary compares models

    def __post_init__(self):
        unknown = [m for m in self.models if m not in MODELS]
        if unknown:
            raise UserError(f"unknown model(s) {unknown}; valid: {', '.join(MODELS)}")
        if self.trials < 1 or self.trials_per_iter < 1:
            raise UserError("trials and trials_per_iter must be >= 1")
