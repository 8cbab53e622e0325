"""A JSONDatabase constructor that creates the directories its files go in.

For apache-tvm 0.27.0.post1.

Why: ``ms.database.JSONDatabase(work_dir=W)`` (or with explicit file paths) fails with
``ValueError: ... Cannot create new file: W/database_workload.json`` when W does not exist yet;
only ``tune_tir``/``tune_tasks`` create their work_dir first. Code that opens a database itself
(offline record collection, replaying records into a dataset) hits this on every fresh directory.
"""

from __future__ import annotations

import os

from tvm.s_tir import meta_schedule as ms


def open_json_database(
    work_dir: str | None = None,
    *,
    path_workload: str | None = None,
    path_tuning_record: str | None = None,
    allow_missing: bool = True,
    module_equality: str = "structural",
) -> ms.database.JSONDatabase:
    """``ms.database.JSONDatabase`` with the same arguments, after creating missing parent dirs."""
    # With allow_missing=False a missing file must still be an error, so create nothing.
    if allow_missing:
        if work_dir is not None:
            os.makedirs(work_dir, exist_ok=True)
        for path in (path_workload, path_tuning_record):
            if path is not None and os.path.dirname(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
    return ms.database.JSONDatabase(
        path_workload,
        path_tuning_record,
        work_dir=work_dir,
        allow_missing=allow_missing,
        module_equality=module_equality,
    )
