"""What every command group of the CLI shares: argparse value types and the --target value."""
from __future__ import annotations

import argparse

from tvm_patches.host_target import resolve_target

from ..errors import UserError


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text}")
    return value


def cli_target(spec: str):
    """A --target/--device value as a Target; one it cannot read is a UserError naming it."""
    try:
        return resolve_target(spec)
    except ValueError as e:
        raise UserError(f"--target {spec!r}: {e}") from e


TARGET_HELP = '"host" (this CPU, with mcpu), a target tag such as nvidia/nvidia-h100, or a JSON dict'
