"""cdmpp-tvm: the CDMPP learned latency predictor as a cost model for TVM MetaSchedule.

    from cdmpp_tvm import CDMPPCostModel
    ms.tune_tasks(..., cost_model=CDMPPCostModel())
"""
from tvm_patches.ffi_version import check_tvm_versions

# Before anything imports tvm: a wrong apache-tvm-ffi segfaults mid-tuning instead of failing here.
check_tvm_versions()

from .cost_model import CDMPPCostModel, OnlineConfig  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CDMPPCostModel", "OnlineConfig", "__version__"]
