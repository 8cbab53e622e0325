"""YAML configs -> the plain dataclasses ``ModelConfig`` and ``TrainConfig`` (yaml.safe_load only)."""
from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml

from .model import ModelConfig
from .model.training import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    pass


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


def _build(cls, data: dict, path: Path):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown {cls.__name__} setting(s) {unknown}; known: {sorted(known)}")
    try:
        return cls(**data)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{path}: {e}") from e


def load_model_config(path: str | Path) -> ModelConfig:
    path = Path(path)
    return _build(ModelConfig, _read_yaml(path), path)


def load_train_config(path: str | Path) -> tuple[ModelConfig, TrainConfig]:
    """A training config file: TrainConfig settings plus ``model_config`` (a path relative to the file)."""
    path = Path(path)
    data = _read_yaml(path)
    model_path = data.pop("model_config", None)
    model_cfg = load_model_config(path.parent / model_path) if model_path else ModelConfig()
    return model_cfg, _build(TrainConfig, data, path)
