"""Measured records -> ``TrainingData`` (compact ASTs, latencies, task groups, device descriptors)."""
from __future__ import annotations

import logging

import numpy as np
from tqdm import tqdm

from ..device import device_descriptor
from ..features import CompactASTFeaturizer, is_gpu_target
from ..model.training import TrainingData
from .reader import MeasuredRecord

logger = logging.getLogger(__name__)


def training_data_from_records(records: list[MeasuredRecord], progress: bool = True,
                               featurizer: CompactASTFeaturizer | None = None) -> TrainingData:
    """Featurize the valid records (failed ones are not regression targets). A record whose trace no
    longer replays is logged with its file:line and skipped."""
    featurizer = featurizer or CompactASTFeaturizer()
    asts, lats, groups, devs = [], [], [], []
    descriptors: dict[str, np.ndarray] = {}
    skipped = 0
    for rec in tqdm([r for r in records if r.latency_s is not None], desc="featurize", disable=not progress):
        target = rec.target
        key = str(target)
        if key not in descriptors:
            descriptors[key] = device_descriptor(target)
        try:
            ast = featurizer.featurize([rec.scheduled_mod()], is_gpu_target(target))[0]
        except Exception as e:  # noqa: BLE001
            skipped += 1
            logger.warning("%s: cannot replay or featurize this record, skipped: %s: %s", rec.source, type(e).__name__, e)
            continue
        asts.append(ast)
        lats.append(rec.latency_s)
        groups.append(rec.task_key)
        devs.append(descriptors[key])
    if skipped:
        logger.warning("%d of %d valid records could not be featurized", skipped, skipped + len(asts))
    device = np.stack(devs) if devs else None
    return TrainingData(asts, np.asarray(lats), np.asarray(groups), device)
