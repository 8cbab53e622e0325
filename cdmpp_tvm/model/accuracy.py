"""How accurate a checkpoint is on measured databases (``cdmpp-tvm evaluate``): its predictions of every
valid record, scored with ``cdmpp_tvm.evaluation.compute_metrics``."""
from __future__ import annotations

import os

from ..data.feature_cache import COMPACT_AST, load_cached_features, to_training_data
from ..errors import UserError
from ..evaluation import compute_metrics, program_keys, task_labels
from .checkpoint import Checkpoint


def evaluate_checkpoint(checkpoint: Checkpoint, databases: list[str | os.PathLike]) -> tuple[dict, dict, int]:
    """-> (metrics of ``compute_metrics``, facts of the records (``load_cached_features``), number of valid
    records scored). Raises UserError when the databases hold no valid record."""
    cached, facts = load_cached_features(databases, COMPACT_AST)
    if len(cached) == 0:
        raise UserError(f"no valid records in {len(databases)} database(s) ({facts['n_failed']} failed runs)")
    data = to_training_data(cached)
    pred_s = checkpoint.predict_latency_s(data.asts, data.device)
    result = compute_metrics(pred_s, cached.latencies, task_labels(cached.groups, facts["task_names"], cached.device_names),
                             program_keys(data.asts))
    return result, facts, len(cached)
