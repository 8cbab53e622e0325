"""Baseline latency predictors on MetaSchedule's PerStoreFeature rows, for accuracy comparisons.

* ``XGBBaseline`` (``xgb.py``): MetaSchedule's XGBModel recipe (pack-sum boosted trees) on ln(latency).
* ``SegmentSumMLP`` (``mlp.py``): TenSet's MLP (per-row MLP, sum over rows, MLP head) on ln(latency).
Their input, PerStoreFeature rows of measured records, is made by ``cdmpp_tvm.data.per_store_features``
and cached per database by ``cdmpp_tvm.data.feature_cache`` (kind ``PER_STORE``).

Both models take X = a list of (n_rows, 164) arrays, one per program, and predict latency in seconds.
"""
from .mlp import MLPConfig, SegmentSumMLP
from .xgb import XGBBaseline

__all__ = ["MLPConfig", "SegmentSumMLP", "XGBBaseline"]
