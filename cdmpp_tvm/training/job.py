"""YAML configs -> the plain dataclasses ``ModelConfig`` and ``TrainConfig`` (yaml.safe_load only).

A training config file (``configs/train/*.yaml``) holds ``TrainConfig`` settings plus:

* ``model_config``: a model YAML, relative to the training file; and/or ``model``: a mapping of
  ``ModelConfig`` settings (these win over the file's);
* the data, optional (``cdmpp-tvm train`` flags override them): ``databases: [dirs]`` or
  ``split: split.json`` (+ ``split_root``) = train on the split's *train* directories;
  ``target_domain_databases: [dirs]`` (or ``split:test``: the split's test directories, features only)
  = unlabeled programs for the CMD regularizer; ``out``: checkpoint to write; ``state_path``: training
  state for resuming. Relative data paths are relative to the current directory, as on the command line;
* ``hparam_search``: settings of ``cdmpp-tvm tune-hparams`` (``HParamSearchConfig``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from ..atomic_io import write_text_atomic
from ..data.splits import read_split
from ..errors import UserError
from ..model import ModelConfig
from .config import TrainConfig

# Inside the package (a link to the repository's configs/ in a checkout, a copy in a wheel): an installed
# cdmpp-tvm finds its default configs wherever it runs.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class ConfigError(UserError):
    """A config file or setting that cannot be used; the message names the file and the key."""


def _read_yaml(path: Path) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _build(cls, data: dict, path: Path, where: str = ""):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: {where}unknown {cls.__name__} setting(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {where}{e}") from e


def load_model_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    return _build(ModelConfig, _read_yaml(path), path)


SPLIT_TEST = "split:test"  # target_domain_databases value: the split's test directories


@dataclass
class HParamSearchConfig:
    """``hparam_search:`` of a training YAML; flags of ``cdmpp-tvm tune-hparams`` override it."""

    trials: int = 20
    epochs: int = 30  # per trial
    time_limit_s: float | None = None  # per trial
    storage: str | None = None  # e.g. sqlite:///work_dirs/hparams.db (resumable)
    study_name: str = "cdmpp-tvm"
    seed: int = 0

    def __post_init__(self):
        for key in ("trials", "epochs"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {v!r}")


@dataclass
class TrainJob:
    """Everything a training YAML says: model, training settings, data and outputs."""

    model: ModelConfig
    train: TrainConfig
    databases: list[str] = field(default_factory=list)
    split: str | None = None
    split_root: str | None = None
    target_domain_databases: list[str] | str = field(default_factory=list)  # dirs, or SPLIT_TEST
    out: str | None = None
    state_path: str | None = None
    hparam_search: HParamSearchConfig = field(default_factory=HParamSearchConfig)
    path: str | None = None  # the file it came from

    def training_dirs(self) -> list[Path]:
        """``databases``, else the split's training directories (never its test directories)."""
        if self.databases:
            return [Path(d) for d in self.databases]
        if self.split:
            try:
                return read_split(self.split, self.split_root)[0]
            except (OSError, ValueError) as e:
                raise ConfigError(f"{self.path}: split: cannot read {self.split}: {e}") from e
        raise ConfigError(f"{self.path or 'config'}: no training data; set 'databases: [dirs]' or 'split: FILE' "
                          "in the file, or pass --database")

    def target_domain_dirs(self) -> list[Path]:
        if self.target_domain_databases == SPLIT_TEST:
            return read_split(self.split, self.split_root)[1]
        return [Path(d) for d in self.target_domain_databases]

    def to_yaml_dict(self) -> dict:
        """A mapping that ``load_train_job`` reads back to this job (model settings inline)."""
        model = {k: v for k, v in self.model.to_dict().items() if k not in ("feature_dim", "device_dim")}
        out = {"model": model, **self.train.to_dict()}
        for key in DATA_KEYS:
            v = getattr(self, key)
            if v:
                out[key] = list(v) if isinstance(v, list) else v
        return out


DATA_KEYS = ("databases", "split", "split_root", "target_domain_databases", "out", "state_path")


def _str_list(path: Path, key: str, v) -> list[str]:
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ConfigError(f"{path}: {key}: expected a list of directory paths, got {v!r}")
    return list(v)


def _str(path: Path, key: str, v) -> str | None:
    if v is not None and not isinstance(v, str):
        raise ConfigError(f"{path}: {key}: expected a path (string), got {v!r}")
    return v


def load_train_job(path: str | Path) -> TrainJob:
    """Read and check a training YAML; every error names the file and the key."""
    path = Path(path)
    data = _read_yaml(path)
    model_path = data.pop("model_config", None)
    if model_path is not None and not isinstance(model_path, str):
        raise ConfigError(f"{path}: model_config: expected a path (string), got {model_path!r}")
    inline_model = data.pop("model", None) or {}
    if not isinstance(inline_model, dict):
        raise ConfigError(f"{path}: model: expected a mapping of model settings, got {inline_model!r}")
    model_dict = load_model_config(path.parent / model_path).to_dict() if model_path else {}
    model_cfg = _build(ModelConfig, {**model_dict, **inline_model}, path)
    search = data.pop("hparam_search", None) or {}
    if not isinstance(search, dict):
        raise ConfigError(f"{path}: hparam_search: expected a mapping, got {search!r}")
    search_cfg = _build(HParamSearchConfig, search, path, "hparam_search: ")
    d = {k: data.pop(k) for k in DATA_KEYS if k in data}
    databases = _str_list(path, "databases", d["databases"]) if d.get("databases") is not None else []
    split = _str(path, "split", d.get("split"))
    if databases and split:
        raise ConfigError(f"{path}: give either databases or split, not both")
    if d.get("split_root") is not None and not split:
        raise ConfigError(f"{path}: split_root without split")
    target = d.get("target_domain_databases")
    if target == SPLIT_TEST:
        if not split:
            raise ConfigError(f"{path}: target_domain_databases: {SPLIT_TEST!r} needs a split")
    else:
        target = _str_list(path, "target_domain_databases", target) if target is not None else []
    unknown = sorted(set(data) - {f.name for f in fields(TrainConfig)})
    if unknown:
        known = sorted({f.name for f in fields(TrainConfig)} | set(DATA_KEYS)
                       | {"model_config", "model", "hparam_search"})
        raise ConfigError(f"{path}: unknown setting(s) {unknown}; known: {known}")
    train_cfg = _build(TrainConfig, data, path)
    return TrainJob(model_cfg, train_cfg, databases, split, _str(path, "split_root", d.get("split_root")), target,
                    _str(path, "out", d.get("out")), _str(path, "state_path", d.get("state_path")), search_cfg,
                    str(path))


def load_train_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """A training config file: TrainConfig settings plus ``model_config`` (a path relative to the file),
    ``model`` (inline model settings) and the data keys (``load_train_job`` has those)."""
    job = load_train_job(path)
    return job.model, job.train


def write_train_config(job: TrainJob, path: str | Path, header: str = "") -> None:
    """Write ``job`` as a training YAML that ``cdmpp-tvm train --config`` reads (atomically)."""
    text = "".join(f"# {line}\n" for line in header.splitlines()) + yaml.safe_dump(job.to_yaml_dict(), sort_keys=False)
    write_text_atomic(path, text)
