"""Hyperparameter search for the CDMPP predictor with Optuna (``cdmpp-tvm tune-hparams``).

* Sampler: TPE, seeded. With a storage (``sqlite:///file.db``) and a study name the search resumes: a
  rerun counts the finished trials and runs only the rest (trials killed mid-run are run again), with
  the sampler seeded by (seed, number of trials in the study).
* Space (``SPACE``): lr (log 1e-4..3e-3), weight_decay (log 1e-6..1e-2), d_model {64, 128, 256},
  n_layers {1, 2, 3, 4}, dropout [0, 0.3], loss {mse+rank, mse+mape}, label_transform {log, box-cox},
  batch_size {128, 256, 512}; everything else comes from the base config. A model with the work
  offset only works with the log label, so for it the label transform is not searched (``space_for``).
* Objective: validation MAPE of the de-transformed predictions of the model a trial returns (the epoch
  with the best validation loss), on one fixed validation split of whole *training* tasks. MAPE in
  seconds compares trials with different losses and label transforms, which their own losses would not
  (the original CDMPP tuner minimised the *training* MAPE instead). Trials report the MAPE after every
  epoch and the median pruner stops hopeless ones.
* Budget: each trial trains ``trial_epochs`` epochs (early stopping still applies) and at most
  ``trial_time_limit_s`` seconds.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import PurePosixPath

from ..data.dataset import TrainingData, split_by_group
from ..errors import UserError
from ..model import ModelConfig
from .config import TrainConfig
from .job import TrainJob
from .loop import train

logger = logging.getLogger(__name__)

SPACE = {
    "lr": ("log", 1e-4, 3e-3),
    "weight_decay": ("log", 1e-6, 1e-2),
    "d_model": ("choice", [64, 128, 256]),
    "n_layers": ("choice", [1, 2, 3, 4]),
    "dropout": ("float", 0.0, 0.3),
    "loss": ("choice", ["mse+rank", "mse+mape"]),
    "label_transform": ("choice", ["log", "box-cox"]),
    "batch_size": ("choice", [128, 256, 512]),
}
MODEL_PARAMS = ("d_model", "n_layers", "dropout")


def apply_params(params: dict, model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The base configs with a trial's parameters put in."""
    m = {k: v for k, v in params.items() if k in MODEL_PARAMS}
    t = {k: v for k, v in params.items() if k not in MODEL_PARAMS}
    # ModelConfig refuses a d_model that n_heads does not divide: the trial uses the largest head count that does.
    m["n_heads"] = math.gcd(m.get("d_model", model_cfg.d_model), model_cfg.n_heads)
    model_cfg = dataclasses.replace(model_cfg, **m)
    return model_cfg, dataclasses.replace(train_cfg, **t)


def space_for(model_cfg: ModelConfig) -> dict:
    """The searched parameters for a base model: ``SPACE``, less the label transform when the model
    has the work offset (it needs the log label; a Box-Cox trial would fail, not lose)."""
    if model_cfg.work_offset:
        return {k: v for k, v in SPACE.items() if k != "label_transform"}
    return dict(SPACE)


def suggest(trial, model_cfg: ModelConfig) -> dict:
    params = {}
    for name, spec in space_for(model_cfg).items():
        if spec[0] == "log":
            params[name] = trial.suggest_float(name, spec[1], spec[2], log=True)
        elif spec[0] == "float":
            params[name] = trial.suggest_float(name, spec[1], spec[2])
        else:
            params[name] = trial.suggest_categorical(name, spec[1])
    return params


def search_hparams(data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig, n_trials: int, *,
                   trial_epochs: int | None = None, trial_time_limit_s: float | None = None,
                   storage: str | None = None, study_name: str = "cdmpp-tvm", seed: int = 0,
                   target_domain: TrainingData | None = None, prune: bool = True):
    """Run the search until the study has ``n_trials`` finished trials; return the ``optuna.Study``.
    ``data``: the training data (the validation tasks are split off it, as ``train`` does)."""
    import optuna  # lazy: a heavy import that only tune-hparams needs

    tr_idx, va_idx = split_by_group(data.groups, train_cfg.val_fraction, train_cfg.seed)
    if len(va_idx) == 0:
        raise UserError("search_hparams: needs at least 2 training tasks (the validation split is whole tasks)")
    train_data, val_data = data.subset(tr_idx), data.subset(va_idx)
    base = dataclasses.replace(train_cfg, progress=False, epochs=trial_epochs or train_cfg.epochs,
                               time_limit_s=trial_time_limit_s if trial_time_limit_s is not None
                               else train_cfg.time_limit_s)

    def objective(trial) -> float:
        params = suggest(trial, model_cfg)
        mcfg, tcfg = apply_params(params, model_cfg, base)

        def on_epoch(epoch, model, history):
            mape = history["val_mape"][-1]
            if math.isfinite(mape):
                trial.report(mape, epoch)
            if prune and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        _, _, history = train(train_data, mcfg, tcfg, val_data=val_data, on_epoch=on_epoch,
                              target_domain=target_domain)
        best = history["best_epoch"]
        value = history["val_mape"][best] if best >= 0 else float("nan")
        trial.set_user_attr("best_epoch", best)
        trial.set_user_attr("val_loss", history["val_loss"][best] if best >= 0 else None)
        trial.set_user_attr("epochs_run", len(history["train_loss"]))
        if not math.isfinite(value):
            raise optuna.TrialPruned("validation MAPE is not finite (diverged)")
        return float(value)

    study = optuna.create_study(study_name=study_name, storage=storage, direction="minimize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2))
    # A resumed study continues with a sampler seeded by (seed, trials so far): deterministic, and it does
    # not replay the first run's random start-up suggestions.
    study.sampler = optuna.samplers.TPESampler(seed=seed + 7919 * len(study.trials))
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = sum(t.state in finished for t in study.trials)
    if done:
        logger.info("Study %s: %d trial(s) already finished", study_name, done)
    if n_trials > done:
        study.optimize(objective, n_trials=n_trials - done, gc_after_trial=True)
    return study


def best_job(study, base: TrainJob) -> TrainJob:
    """``base`` with the best trial's parameters (full ``epochs`` of the base, not the trial budget).
    Its ``out`` and ``state_path`` get a ``-tuned`` suffix: training it must neither overwrite the base
    run's checkpoint nor resume from the base run's training state (another model shape)."""
    import optuna  # lazy: a heavy import that only tune-hparams needs

    if not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials):
        raise ValueError(f"study {study.study_name}: no completed trial (all pruned or failed)")
    model_cfg, train_cfg = apply_params(study.best_trial.params, base.model, base.train)
    return dataclasses.replace(base, model=model_cfg, train=train_cfg, out=_tuned(base.out),
                               state_path=_tuned(base.state_path))


def _tuned(path: str | None) -> str | None:
    if not path:
        return path
    p = PurePosixPath(path)
    stem = p.name[: -len(".state.pt")] if p.name.endswith(".state.pt") else p.stem
    suffix = p.name[len(stem):]
    return str(p.with_name(f"{stem}-tuned{suffix}"))


def trials_table(study) -> list[dict]:
    """One row per trial: number, state, value, params."""
    return [{"number": t.number, "state": t.state.name, "value": t.value, **t.params} for t in study.trials]


__all__ = ["SPACE", "apply_params", "best_job", "search_hparams", "space_for", "suggest", "trials_table"]
