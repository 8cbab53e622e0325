"""``cdmpp-tvm train`` and ``cdmpp-tvm tune-hparams``: train a checkpoint from a training YAML, search its
hyperparameters."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from ..training import (
    CONFIG_DIR,
    best_job,
    job_with_overrides,
    load_job_data,
    run_train_job,
    search_hparams,
    trials_table,
    write_train_config,
)
from .common import non_negative_float, positive_int

DEFAULT_TRAIN_CONFIG = CONFIG_DIR / "train" / "default.yaml"


def register(sub) -> None:
    _add_train(sub)
    _add_tune_hparams(sub)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a CDMPP checkpoint on MetaSchedule databases")
    p.add_argument("--config", default=str(DEFAULT_TRAIN_CONFIG),
                   help="training YAML; it may also name the data (databases: or split:), target_domain_databases:, "
                        "out: and state_path: (default: %(default)s)")
    p.add_argument("--database", nargs="+", default=None,
                   help="database directories (searched recursively); override the config's databases/split")
    p.add_argument("--out", default=None, help="checkpoint file to write (overrides the config's out)")
    p.add_argument("--epochs", type=positive_int, default=None, help="override the config's epochs")
    p.add_argument("--resume-state", default=None,
                   help="training-state file, written every checkpoint_every epochs and resumed from when it "
                        "exists (overrides the config's state_path)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)



def run_train(args) -> int:
    job = job_with_overrides(args.config, args.database, args.out, args.resume_state, args.epochs,
                             progress=not args.no_progress)
    history = run_train_job(job, args.config)
    if history is not None:  # rank 0
        best = history["best_epoch"] if history["best_epoch"] >= 0 else -1
        print(f"Best validation loss {history['val_loss'][best]:.4f} (MAPE {history['val_mape'][best]:.1%}) at epoch "
              f"{best} ({history['stopped']}, {history['seconds']:.0f} s). Wrote {job.out}")
    return 0


def _add_tune_hparams(sub) -> None:
    p = sub.add_parser("tune-hparams", help="search training hyperparameters with Optuna (TPE) on the "
                                            "validation tasks of a training config")
    p.add_argument("--config", default=str(DEFAULT_TRAIN_CONFIG),
                   help="base training YAML (data, fixed settings, optional hparam_search:); default: %(default)s")
    p.add_argument("--trials", type=positive_int, default=None,
                   help="finished trials the study should have (default: the config's hparam_search.trials)")
    p.add_argument("--database", nargs="+", default=None, help="override the config's databases/split")
    p.add_argument("--epochs", type=positive_int, default=None, help="epochs per trial (default: hparam_search.epochs)")
    p.add_argument("--time-limit", type=non_negative_float, default=None,
                   help="seconds per trial (default: hparam_search.time_limit_s)")
    p.add_argument("--storage", default=None, help="Optuna storage, e.g. sqlite:///hparams.db (resumable)")
    p.add_argument("--study-name", default=None)
    p.add_argument("--seed", type=int, default=None, help="TPE sampler seed")
    p.add_argument("--out", default=None, help="write the best config here as a training YAML")
    p.set_defaults(func=run_tune_hparams)



def run_tune_hparams(args) -> int:
    job = job_with_overrides(args.config, args.database)
    loaded = load_job_data(job)
    s = job.hparam_search
    trials = args.trials if args.trials is not None else s.trials
    epochs = args.epochs if args.epochs is not None else s.epochs
    time_limit = args.time_limit if args.time_limit is not None else s.time_limit_s
    storage, study_name = args.storage or s.storage, args.study_name or s.study_name
    seed = args.seed if args.seed is not None else s.seed
    if storage and storage.startswith("sqlite:///"):  # sqlite does not create the directory
        Path(storage[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    print(f"Searching hyperparameters: {trials} trials x <= {epochs} epochs"
          + (f" / {time_limit:.0f} s" if time_limit else "") + f" on {len(loaded.data)} programs"
          + (f", study {study_name!r} in {storage}" if storage else ""), flush=True)
    study = search_hparams(loaded.data, job.model, job.train, trials, trial_epochs=epochs,
                           trial_time_limit_s=time_limit, storage=storage, study_name=study_name, seed=seed,
                           target_domain=loaded.target_domain)
    for row in trials_table(study):
        value = "-" if row["value"] is None else f"{row['value']:.4f}"
        print(f"  trial {row['number']:3d} {row['state']:8s} val MAPE {value}")
    try:
        best = best_job(study, job)
    except ValueError as e:  # no completed trial: the search ran, but found nothing to write
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"Best trial {study.best_trial.number}: validation MAPE {study.best_value:.2%}, {study.best_trial.params}")
    header = (f"Best of {len(study.trials)} trials of study {study_name!r} (validation MAPE {study.best_value:.4f}), "
              f"from {args.config}.\nTrain with: cdmpp-tvm train --config THIS_FILE")
    if args.out:
        write_train_config(best, args.out, header)
        print(f"Wrote {args.out}")
    else:
        print(yaml.safe_dump(best.to_yaml_dict(), sort_keys=False))
    return 0
