"""MetaSchedule's ``PerStoreFeature`` rows of a measured record: what its XGB and MLP cost models read.

``PerStoreFeature`` (C++) gives one 164-d row per *written buffer* of the lowered program (stores of a
constant, such as a reduction's init, give no row; a later store to the same buffer overwrites the
row). It needs a ``TuneContext`` (workload module and target) and ``MeasureCandidate``s (the schedule
replayed from the record's trace, and the argument infos). The feature cache stores these rows per
record (``cdmpp_tvm.data.feature_cache.PER_STORE``, file ``features.perstore.npz``).
"""
from __future__ import annotations

import numpy as np
from tvm.s_tir import meta_schedule as ms

from tvm_patches.tensor_intrin import register_tensor_intrinsics

from .reader import MeasuredRecord


class PerStoreRecordFeaturizer:
    """``featurizer(record) -> {"features": (n_rows, 164) float32}``, one TuneContext per (task, target).

    The TuneContext is built without a space generator: PerStoreFeature reads only its target (and
    ``num_threads``, which matters for batches, not for one candidate at a time)."""

    def __init__(self):
        self.extractor = ms.feature_extractor.PerStoreFeature()  # MetaSchedule's defaults, as in XGBModel
        self._contexts: dict[tuple[str, str], ms.TuneContext] = {}

    def context(self, rec: MeasuredRecord) -> ms.TuneContext:
        key = (rec.task_key, str(rec.target))
        if key not in self._contexts:
            # TuneContext imports every backend's tensor intrinsics (about a minute) unless they are registered.
            register_tensor_intrinsics(rec.target)
            self._contexts[key] = ms.TuneContext(mod=rec.workload_mod, target=rec.target, num_threads=1)
        return self._contexts[key]

    def __call__(self, rec: MeasuredRecord) -> dict[str, np.ndarray]:
        candidate = rec.record.as_measure_candidate()  # replays the trace on the workload
        rows = self.extractor.extract_from(self.context(rec), [candidate])[0].numpy()
        return {"features": rows.astype(np.float32)}
