"""Checkpoints: one file = weights + model config + feature-schema version + label transform + device
(+ an optional tree head, ``tree_head.py``, blended into every latency the checkpoint predicts).

Written atomically (temporary file in the same directory, fsync, rename) so a kill never leaves a
half-written checkpoint; loaded with ``torch.load(weights_only=True)``: the file holds only tensors and
plain Python values, never pickled objects.

Bundled checkpoints live in ``cdmpp_tvm/pretrained/``; ``index.json`` there maps each name to the
target kind it is for, so ``CDMPPCostModel()`` can pick one by the target it is tuning.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tvm

from ..atomic_io import atomic_path
from ..data.dataset import TrainingData
from ..device import DEVICE_SCHEMA_VERSION, device_descriptor, device_name
from ..errors import UserError
from ..features import FEATURE_DIM, FEATURE_SCHEMA_VERSION
from .inference import default_torch_device, predict_transformed
from .label_transform import LabelTransform
from .network import CDMPPNet, ModelConfig
from .tree_head import TreeHead

FORMAT = "cdmpp-tvm-checkpoint"
FORMAT_VERSION = 2  # 2: optional "tree_head"; version 1 files (no tree head) are read too
READABLE_FORMAT_VERSIONS = (1, 2)
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
_REQUIRED = ("format", "format_version", "feature_schema", "device_schema", "model_config", "state_dict",
             "label_transform", "device")


class CheckpointError(UserError):
    """A checkpoint file that is missing, corrupt, or made for another feature schema."""


@dataclass
class Checkpoint:
    model: CDMPPNet
    label_transform: LabelTransform
    device: dict  # {"name", "targets", "descriptor" [, "finetuned_from"]} of the training device(s)
    info: dict = field(default_factory=dict)  # training facts: data, config, history, date
    path: str = ""
    tree_head: TreeHead | None = None  # blended into latency_s; None = the transformer alone

    @property
    def config(self) -> ModelConfig:
        return self.model.cfg

    def trained_descriptors(self) -> list[np.ndarray]:
        """Descriptors of the training device(s), under the current descriptor schema."""
        out = []
        if self.device.get("descriptor"):
            out.append(np.asarray(self.device["descriptor"], dtype=np.float32))
        for t in self.device.get("targets", []) or []:
            try:
                out.append(device_descriptor(tvm.target.Target(json.loads(t) if isinstance(t, str) else t)))
            except Exception:  # noqa: BLE001 - a target this TVM cannot parse is simply not matched
                continue
        return out

    def predict_latency_s(self, asts: list, device_vec=None, batch_size: int = 1024, device: str = "auto",
                          with_tree_head: bool = True):
        """Predicted latency in seconds, (N,) float64, of N compact ASTs. ``device_vec``: the descriptor
        of the device to predict for, (D,) for all or (N, D) per program; None = the checkpoint's own
        training device. ``device``: torch device ("auto" = CUDA when available). ``with_tree_head``:
        False = the transformer alone."""
        if device_vec is None and self.device.get("descriptor"):
            device_vec = np.asarray(self.device["descriptor"], dtype=np.float32)
        torch_device = default_torch_device(device)
        self.model.to(torch_device)
        pred = predict_transformed(self.model, asts, device_vec, batch_size, torch_device)
        return self.latency_s(pred, asts) if with_tree_head else self.label_transform.inverse(pred)

    def latency_s(self, transformed: np.ndarray, asts: list, trees_latency_s: np.ndarray | None = None
                  ) -> np.ndarray:
        """(N,) seconds from the transformer's (N,) outputs (label-transform space) for these N programs:
        the inverse label transform, blended with the tree head when the checkpoint has one
        (``trees_latency_s``: the head's ``trees_latency_s(asts)``, when the caller already has it)."""
        latency = self.label_transform.inverse(transformed)
        return latency if self.tree_head is None else self.tree_head.blend(latency, asts, trees_latency_s)

    def trees_latency_s(self, asts: list) -> np.ndarray | None:
        """(N,) seconds the tree head alone predicts for N programs; None when the checkpoint has none."""
        return None if self.tree_head is None else self.tree_head.predict_latency_s(asts)


def _non_finite_tensors(state_dict: dict) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold NaN or infinity."""
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def device_entry(targets: list[str], data: TrainingData) -> dict:
    """A checkpoint's ``device`` entry for a model trained on ``data`` measured on ``targets`` (target
    JSON strings): the device names, the targets, and the descriptor of the first program's device."""
    names = sorted({device_name(tvm.target.Target(t)) for t in targets})
    return {"name": ", ".join(names), "targets": list(targets),
            "descriptor": data.device[0].tolist() if data.device is not None else []}


def save_checkpoint(path: str | os.PathLike, model: CDMPPNet, label_transform: LabelTransform, device: dict,
                    info: dict | None = None, tree_head: TreeHead | None = None) -> None:
    """Write a checkpoint atomically; refuses (CheckpointError) a model with NaN or infinite weights, which
    would predict NaN for every program."""
    if bad := _non_finite_tensors(model.state_dict()):
        raise CheckpointError(f"{path}: not written: the model has non-finite values (NaN/inf) in {bad[:5]}"
                              + (f" and {len(bad) - 5} more" if len(bad) > 5 else ""))
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_schema": FEATURE_SCHEMA_VERSION,
        "device_schema": DEVICE_SCHEMA_VERSION,
        "model_config": model.cfg.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "label_transform": label_transform.to_dict(),
        "device": device,
        "info": json.loads(json.dumps(info or {})),  # plain JSON values only, so weights_only loading works
        "tree_head": None if tree_head is None else tree_head.to_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def resolve_checkpoint_path(path_or_name: str | os.PathLike) -> Path:
    """A file path, or the name of a bundled checkpoint (``list_pretrained()``)."""
    p = Path(path_or_name)
    if p.is_file():
        return p
    index = pretrained_index()
    if str(path_or_name) in index:
        return PRETRAINED_DIR / index[str(path_or_name)]["file"]
    raise CheckpointError(f"checkpoint {str(path_or_name)!r} is neither a file nor a bundled checkpoint "
                          f"(bundled: {sorted(index) or 'none'})")


def load_checkpoint(path_or_name: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    path = resolve_checkpoint_path(path_or_name)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, random bytes, pickled objects refused by weights_only
        raise CheckpointError(f"{path}: not a readable cdmpp-tvm checkpoint (corrupt or truncated?): "
                              f"{type(e).__name__}: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cdmpp-tvm checkpoint (no '{FORMAT}' header)")
    missing = [k for k in _REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {missing}")
    if payload["format_version"] not in READABLE_FORMAT_VERSIONS:
        raise CheckpointError(f"{path}: checkpoint format version {payload['format_version']}, this cdmpp-tvm "
                              f"reads versions {READABLE_FORMAT_VERSIONS}")
    if payload["feature_schema"] != FEATURE_SCHEMA_VERSION:
        raise CheckpointError(f"{path}: trained on feature schema {payload['feature_schema']!r}, but this cdmpp-tvm "
                              f"extracts {FEATURE_SCHEMA_VERSION!r}; retrain or use a matching cdmpp-tvm version")
    if payload["device_schema"] != DEVICE_SCHEMA_VERSION:
        raise CheckpointError(f"{path}: device descriptor schema {payload['device_schema']!r}, expected "
                              f"{DEVICE_SCHEMA_VERSION!r}")
    try:
        cfg = ModelConfig.from_dict(payload["model_config"])
        if cfg.feature_dim != FEATURE_DIM:
            raise CheckpointError(f"{path}: model expects {cfg.feature_dim} features per leaf, extractor gives {FEATURE_DIM}")
        model = CDMPPNet(cfg)
        if bad := _non_finite_tensors(payload["state_dict"]):
            raise CheckpointError(f"{path}: the weights hold non-finite values (NaN/inf) in {bad[:5]}; "
                                  "the checkpoint is unusable, retrain it")
        model.load_state_dict(payload["state_dict"])
        label_transform = LabelTransform.from_dict(payload["label_transform"])
        tree_head = None if payload.get("tree_head") is None else TreeHead.from_state(payload["tree_head"], str(path))
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path}: checkpoint does not match the model definition: {type(e).__name__}: {e}") from e
    model.eval()
    return Checkpoint(model, label_transform, payload["device"], payload.get("info", {}), str(path), tree_head)


def pretrained_index() -> dict:
    """{name: {"file": ..., "target_kind": ..., "device": ..., "description": ...}} of bundled checkpoints."""
    index_path = PRETRAINED_DIR / "index.json"
    if not index_path.exists():
        return {}
    with open(index_path) as f:
        return json.load(f)


def list_pretrained() -> list[str]:
    return sorted(pretrained_index())


def pretrained_for_target(target) -> str | None:
    """Name of the bundled checkpoint for a target: same kind, preferring the same device name."""
    kind, name = target.kind.name, device_name(target)
    candidates = [(n, e) for n, e in pretrained_index().items() if e.get("target_kind") == kind]
    if not candidates:
        return None
    exact = [n for n, e in candidates if e.get("device") == name]
    return exact[0] if exact else sorted(n for n, _ in candidates)[0]
