"""Read MetaSchedule JSON databases into measured records.

A database is a directory holding ``database_workload.json`` and ``database_tuning_record.json``
(the files ``ms.database.JSONDatabase`` writes). The lines are parsed here, not by the C++ loader, so
that one corrupt or truncated line is reported with its file and line number and skipped, and a whole
load never fails on one bad record.

Latency of a record = median of its ``run_secs``. A record whose run failed (``run_secs`` empty or
>= 1e9, which is how MetaSchedule stores build and run errors) is kept with ``latency_s = None``:
it is counted and can be learnt from as a bad schedule, but it is not a regression target. A record
with a negative, zero, NaN or infinite time is corrupt, not a failure: it is reported with its
``file:line`` in ``ReadReport.problems`` and skipped.

A record with ``run_secs`` null (JSON ``null``, ``TuningRecord(run_secs=None)``) is **not measured yet**:
a program chosen to be measured (``cdmpp-tvm select`` writes them), not a failure. MetaSchedule never
stores a measurement that way (it writes ``[1e10]`` for errors). Such records are counted in
``ReadReport.n_unmeasured`` and left out of ``records`` unless ``include_unmeasured=True`` (then they
have ``measured=False`` and ``latency_s=None``).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tvm
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.utils import shash2hex

from ..errors import UserError
from .layout import RECORD_FILE, WORKLOAD_FILE

logger = logging.getLogger(__name__)

FAILED_RUN_SECS = 1e9


@dataclass
class MeasuredRecord:
    task_key: str  # structural hash of the workload (same key MetaSchedule's own cost models group by)
    task_name: str  # the database directory's name
    record: ms.database.TuningRecord
    latency_s: float | None  # None: the build or run failed
    source: str  # "file:line", for error messages
    measured: bool = True  # False: run_secs null, a program selected for measurement, not measured yet

    @property
    def workload_mod(self) -> tvm.IRModule:
        return self.record.workload.mod

    @property
    def target(self) -> tvm.target.Target:
        return self.record.target

    def scheduled_mod(self) -> tvm.IRModule:
        """The program as it was measured: the trace replayed on the workload."""
        return self.record.as_measure_candidate().sch.mod


@dataclass
class ReadReport:
    records: list[MeasuredRecord] = field(default_factory=list)
    n_failed: int = 0  # records kept with latency None
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong"
    n_unmeasured: int = 0  # records not measured yet (run_secs null); in records only with include_unmeasured

    @property
    def n_valid(self) -> int:
        return sum(1 for r in self.records if r.measured) - self.n_failed

    def extend(self, other: "ReadReport") -> None:
        self.records += other.records
        self.n_failed += other.n_failed
        self.problems += other.problems
        self.n_unmeasured += other.n_unmeasured


def find_databases(paths: list[str | os.PathLike]) -> list[Path]:
    """Every directory under ``paths`` (searched recursively) holding a tuning-record file, sorted."""
    found = set()
    for p in map(Path, paths):
        if not p.exists():
            raise UserError(f"database path {p} does not exist")
        if p.is_file():
            if p.name != RECORD_FILE:
                raise UserError(f"{p}: expected a directory or a {RECORD_FILE} file")
            found.add(p.parent)
            continue
        if (p / RECORD_FILE).exists():
            found.add(p)
        found.update(f.parent for f in p.rglob(RECORD_FILE))
    return sorted(found)


def read_databases(paths: list[str | os.PathLike], include_unmeasured: bool = False) -> ReadReport:
    report = ReadReport()
    for d in find_databases(paths):
        report.extend(read_database(d, include_unmeasured))
    for msg in report.problems:
        logger.warning("skipped: %s", msg)
    return report


def workload_hashes(directory: str | os.PathLike) -> set[str]:
    """Workload hashes (``shash2hex`` form) that a database's workload file defines, without parsing the
    modules: a workload line is [structural hash as a decimal string, module JSON]."""
    with open(Path(directory) / WORKLOAD_FILE, encoding="utf-8") as f:
        return {f"0x{int(json.loads(line)[0]):016x}" for line in f if line.strip()}


def latency_of(run_secs) -> float | None:
    """Median of run_secs in seconds, or None for a failed measurement."""
    if not run_secs:
        return None
    secs = [float(s) for s in run_secs]
    if not all(np.isfinite(secs)):
        return None
    med = float(np.median(secs))
    return med if 0 < med < FAILED_RUN_SECS else None


def read_database(directory: str | os.PathLike, include_unmeasured: bool = False) -> ReadReport:
    """The records of one database directory; see the module docstring for failed and unmeasured ones."""
    directory = Path(directory)
    report = ReadReport()
    workloads = _read_workloads(directory / WORKLOAD_FILE, report)
    record_path = directory / RECORD_FILE
    with open(record_path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{record_path}:{lineno}"
            try:
                obj = json.loads(line)
                wl_index, rec_json = obj
                if wl_index not in workloads:
                    raise ValueError(f"refers to workload #{wl_index}, which {WORKLOAD_FILE} does not define")
                workload, key = workloads[wl_index]
                record = ms.database.TuningRecord.from_json(rec_json, workload)
            except Exception as e:  # noqa: BLE001 - any malformed line is reported and skipped
                report.problems.append(f"{where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                continue
            if record.run_secs is None:  # selected for measurement, not measured: neither valid nor failed
                report.n_unmeasured += 1
                if include_unmeasured:
                    report.records.append(MeasuredRecord(key, directory.name, record, None, where, measured=False))
                continue
            if bad := _invalid_run_secs(record.run_secs):
                report.problems.append(f"{where}: invalid latency run_secs={bad}: measured times must be finite "
                                       "and > 0 seconds (MetaSchedule stores an error as [1e10])")
                continue
            lat = latency_of(record.run_secs)
            report.n_failed += lat is None
            report.records.append(MeasuredRecord(key, directory.name, record, lat, where))
    return report


def _invalid_run_secs(run_secs) -> list[float] | None:
    """The run_secs of a record as floats when one of them is negative, zero, NaN or infinite, else None."""
    secs = [float(x) for x in run_secs]
    return secs if any(not np.isfinite(x) or x <= 0 for x in secs) else None


def _read_workloads(path: Path, report: ReadReport) -> dict[int, tuple[ms.database.Workload, str]]:
    workloads = {}
    if not path.exists():
        report.problems.append(f"{path}: missing; the records beside it cannot be read")
        return workloads
    index = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                workload = ms.database.Workload.from_json(json.loads(line))
                workloads[index] = (workload, shash2hex(workload.mod))
            except Exception as e:  # noqa: BLE001
                report.problems.append(f"{path}:{lineno}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            index += 1  # record lines refer to workloads by line position, bad lines included
    return workloads
