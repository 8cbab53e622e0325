"""Counters of a ``CDMPPCostModel`` (what it scored, learnt and fell back on; ``stats()`` adds the
featurizer's and the learners'), their one-line log, and that log at exit for every model that did
something: the tuner never tells a cost model that tuning has ended."""
from __future__ import annotations

import atexit
import logging
import weakref

logger = logging.getLogger("cdmpp_tvm.cost_model")


def new_counters() -> dict:
    return {"candidates_scored": 0, "predict_calls": 0, "update_calls": 0, "records_seen": 0,
            "failed_runs_seen": 0, "predict_seconds": 0.0, "inference_seconds": 0.0, "update_seconds": 0.0,
            "online_steps": 0, "predict_fallbacks": 0, "update_fallbacks": 0, "online_nonfinite_losses": 0,
            "explored_predict_calls": 0,
            "predictions_by_model": {"anchor": 0, "online": 0, "boosted": 0}}


def fallback_count(counters: dict) -> int:
    """Every counted fallback: failed predict and update calls, skipped non-finite online steps."""
    return counters["predict_fallbacks"] + counters["update_fallbacks"] + counters["online_nonfinite_losses"]


def stats_line(s: dict) -> str:
    """``CDMPPCostModel.stats()`` as one log line."""
    return (f"CDMPPCostModel: {s['candidates_scored']} candidates scored in {s['predict_calls']} predict calls "
            f"(featurize {s['featurize_seconds']:.1f} s, inference {s['inference_seconds']:.1f} s, "
            f"{'compiled' if s['native_featurizer'] else 'Python'} featurizer, cache hit rate "
            f"{100 * s['cache_hit_rate']:.1f}%), {s['update_calls']} updates ({s['records_seen']} records, "
            f"{s['failed_runs_seen']} failed runs, {s['online_steps']} online steps, {s['boosted_fits']} boosted "
            f"fits on {s['boosted_tasks']} tasks, {s['update_seconds']:.1f} s), fallbacks {s['fallbacks']}, "
            f"predictions by model {s['predictions_by_model']}, device {s['torch_device']}")


_LIVE_MODELS: "weakref.WeakSet" = weakref.WeakSet()


def log_stats_at_exit(model) -> None:
    """Log ``model``'s statistics when the process exits, if it predicted or learnt anything by then."""
    _LIVE_MODELS.add(model)


@atexit.register
def _log_stats_at_exit() -> None:
    for model in list(_LIVE_MODELS):
        s = model.stats()
        if s["predict_calls"] or s["update_calls"]:
            logger.info(stats_line(s))
