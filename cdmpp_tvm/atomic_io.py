"""Atomic file writes: the one way this project writes a file that a kill must not leave half-written
(checkpoints, training states, databases' manifests, feature caches, splits, results).

``atomic_path(path)`` yields a temporary path in the same directory (same file system, same suffix so
that writers which pick a format by extension, like matplotlib or numpy, behave); when the block ends
without an exception the file is fsynced, made world-readable (mkstemp makes it owner-only) and renamed
over ``path``; otherwise it is removed. A reader therefore sees the old file or the new one, never a part.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: str | os.PathLike, obj, indent: int | None = 1) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_figure_atomic(path: str | os.PathLike, fig, dpi: int = 120) -> None:
    """Save a matplotlib figure (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
