"""MetaSchedule cost models backed by the CDMPP predictor: the PyCostModel (``cdmpp_cost_model``) and
what it learns online from measurements (``online``, ``boosted``), its optional exploration
(``exploration``) and its counters (``stats``)."""
from .cdmpp_cost_model import CDMPPCostModel
from .online import OnlineConfig

__all__ = ["CDMPPCostModel", "OnlineConfig"]
