"""Make a MetaSchedule JSON database directory safe for TVM to open.

MetaSchedule appends one JSON line per workload and per measured record. A process killed while it
writes leaves a torn last line, and TVM's C++ loader then fails on the whole database with a traceback
that does not name the file. ``repair_torn_database`` runs before this project opens a database it
will resume (``collect``, ``tune --work-dir``): a torn *last* line is removed after the file is copied
to ``<file>.torn-<time>`` and the repair is logged with ``file:line``; any other line that is not JSON
is a ``UserError`` naming ``file:line`` (that is damage, not a kill, and is left for the user to look at).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from ..atomic_io import atomic_path
from ..errors import UserError
from .layout import RECORD_FILE, WORKLOAD_FILE

logger = logging.getLogger(__name__)


def repair_torn_database(directory: str | os.PathLike) -> list[str]:
    """Repair the torn last line of a database's two files (see the module docstring); returns one
    message per repaired file (empty when nothing needed repair)."""
    return [msg for name in (WORKLOAD_FILE, RECORD_FILE) if (msg := _repair_file(Path(directory) / name))]


def _repair_file(path: Path) -> str | None:
    if not path.exists():
        return None
    lines = path.read_bytes().split(b"\n")
    bad = [i for i, line in enumerate(lines, 1) if line.strip() and not _is_json(line)]
    if not bad:
        return None
    last = max(i for i, line in enumerate(lines, 1) if line.strip())
    if bad != [last]:
        raise UserError(f"{path}:{bad[0]}: not a JSON line ({len(bad)} such line(s)); only a torn last line "
                        "(a run killed while writing) is repaired automatically")
    backup = path.with_name(f"{path.name}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
    shutil.copy2(path, backup)
    with atomic_path(path) as tmp:
        tmp.write_bytes(b"".join(line + b"\n" for line in lines[:last - 1] if line.strip()))
    message = (f"{path}:{last}: torn last line (a run killed while writing?) removed; the original file is "
               f"kept as {backup.name}")
    logger.warning(message)
    return message


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False
