"""Training-state files: everything a run needs to resume (weights, optimizer, best weights, history,
label transform, RNG states), written atomically with torch.save and read back with ``weights_only``."""
from __future__ import annotations

import os

import torch

from ..atomic_io import atomic_path
from ..errors import UserError

STATE_FORMAT = "cdmpp-tvm-training-state"
STATE_FORMAT_VERSION = 1


def save_training_state(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with torch.save to a temporary file in the same directory, then rename it over
    ``path``: a kill leaves the previous state or the new one, never half a file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_training_state(path: str | os.PathLike) -> dict:
    """A training state written by ``train``; only tensors and plain values (``weights_only=True``)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable training state: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise UserError(f"{path}: not a cdmpp-tvm training state")
    if state.get("format_version") != STATE_FORMAT_VERSION:
        raise UserError(f"{path}: training state version {state.get('format_version')}, this cdmpp-tvm reads "
                         f"version {STATE_FORMAT_VERSION}")
    return state


def cpu_state_dict(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
