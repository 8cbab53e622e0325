"""Baseline latency predictors on MetaSchedule's PerStoreFeature rows, for accuracy comparisons.

* ``XGBBaseline`` (``xgb.py``): MetaSchedule's XGBModel recipe (pack-sum boosted trees) on ln(latency).
* ``SegmentSumMLP`` (``mlp.py``): TenSet's MLP (per-row MLP, sum over rows, MLP head) on ln(latency).
* ``PerStoreRecordFeaturizer`` (``per_store_features.py``): PerStoreFeature rows of a measured record;
  cached per database by ``cdmpp_tvm.data.feature_cache`` (kind ``PER_STORE``).

Both models take X = a list of (n_rows, 164) arrays, one per program, and predict latency in seconds.
"""
from .mlp import MLPConfig, SegmentSumMLP
from .per_store_features import PerStoreRecordFeaturizer
from .xgb import XGBBaseline

__all__ = ["MLPConfig", "PerStoreRecordFeaturizer", "SegmentSumMLP", "XGBBaseline"]
