"""Search benchmark: best latency found vs measured trials, per cost model (``cdmpp-tvm bench-search``).

Every (model, task, seed) is one independent single-task tuning run with the same trial budget,
evolutionary-search settings, builder (tvm_patches.fast_builder), runner (tuning.default_runner) and
random seed, so the only difference between models is the cost model. Models:

* ``cdmpp``: CDMPPCostModel with a pretrained checkpoint (``checkpoint``; default: the bundled one
  for the target), learning online;
* ``cdmpp-sharp``: ``cdmpp`` with sharper scores (``config.SHARP_SCORE_EXPONENT``): the search mutates the
  programs predicted fast more often;
* ``cdmpp-explore``: ``cdmpp`` exploring where it ranks the task's measurements poorly
  (``config.EXPLORE_SCALE``, Thompson sampling: ``CDMPPCostModel(explore=..., explore_by="residual")``);
* ``cdmpp-explore-ranking``: the same, the noise set by the model's ranking accuracy on the task
  (``explore_by="ranking"``);
* ``cdmpp-scratch``: the same model, untrained, learning online only;
* ``xgb``: MetaSchedule's default XGBModel (PerStoreFeature);
* ``random``: MetaSchedule's RandomModel (the search is still evolutionary; only scores are random).

Modules: ``config`` (the models and settings), ``runs`` (the tuning runs, their resume, and
``run_benchmark``, which runs them all and writes the report), ``report`` (statistics; results.json,
results.csv, summary.md) and ``plots`` (the PNG figures).

Beside it, ``accuracy``: prediction accuracy of CDMPP vs the XGB and MLP baselines on one train/test
split (``score_split``; benchmarks/accuracy.py and benchmarks/kfold.py).
"""
from .config import MODELS, SearchBenchConfig
from .plots import plot_curves
from .report import best_at, summarize, summary_markdown, write_report
from .runs import CURVE_FILE, RESULT_FILE, run_benchmark, run_one

__all__ = ["MODELS", "SearchBenchConfig", "run_benchmark", "run_one", "CURVE_FILE", "RESULT_FILE", "best_at",
           "summarize", "summary_markdown", "write_report", "plot_curves"]
