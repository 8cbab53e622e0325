"""The CDMPP predictor network, its label transform and its losses (the training loop is ``cdmpp_tvm.training``)."""
from .label_transform import LabelTransform
from .losses import (
    MAPE_PRED_CLAMP,
    central_moment_discrepancy,
    mape_loss,
    ranking_pair_losses,
    regression_loss,
)
from .network import CDMPPNet, ModelConfig

__all__ = ["MAPE_PRED_CLAMP", "CDMPPNet", "LabelTransform", "ModelConfig", "central_moment_discrepancy",
           "mape_loss", "ranking_pair_losses", "regression_loss"]
