"""MetaSchedule cost models backed by the CDMPP predictor."""
from .cdmpp_cost_model import CDMPPCostModel, OnlineConfig

__all__ = ["CDMPPCostModel", "OnlineConfig"]
