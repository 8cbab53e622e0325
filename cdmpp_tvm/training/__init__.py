"""Training the CDMPP predictor: the settings (``TrainConfig``), training YAMLs (``load_train_job``),
the loop (``train``, ``evaluate``), a whole job (``run_train_job``), resumable training states, data-parallel training under torchrun
and the hyperparameter search (``search_hparams``)."""
from .config import LOSSES, TrainConfig
from .distributed import DistContext, init_distributed
from .hparam_search import best_job, search_hparams, trials_table
from .job import (
    CONFIG_DIR,
    ConfigError,
    HParamSearchConfig,
    TrainJob,
    load_model_config,
    load_train_config,
    load_train_job,
    write_train_config,
)
from .loop import epoch_generator, evaluate, train
from .run import JobData, job_with_overrides, load_job_data, run_train_job
from .state import load_training_state, save_training_state

__all__ = ["CONFIG_DIR", "LOSSES", "ConfigError", "DistContext", "HParamSearchConfig", "JobData", "TrainConfig",
           "TrainJob", "best_job", "epoch_generator", "evaluate", "init_distributed", "job_with_overrides",
           "load_job_data", "load_model_config", "load_train_config", "load_train_job", "load_training_state",
           "run_train_job", "save_training_state", "search_hparams", "train", "trials_table", "write_train_config"]
