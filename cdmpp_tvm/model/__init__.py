"""The CDMPP predictor network, its label transform and its training loop."""
from .label_transform import LabelTransform
from .network import CDMPPNet, ModelConfig

__all__ = ["CDMPPNet", "LabelTransform", "ModelConfig"]
