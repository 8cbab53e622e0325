"""Featurized datasets on disk: ``cdmpp-tvm featurize``.

Replaying a record's trace and featurizing it costs a few ms; training reads the same records many
times, so the features are stored once, compressed (``np.savez_compressed``), one file per database
directory and feature kind, keyed by record: each program carries the ``file:line`` of its record and a
hash of that line, and the file carries a digest of the record and workload files, so a database that
changed since it was featurized is detected and re-featurized.

Two feature kinds share this machinery (``FEATURE_KINDS``):

* ``COMPACT_AST`` (``features.cdmpp.npz``): the leaves of CDMPP's compact AST, what the CDMPP model reads.
  Row arrays ``leaf_features`` (M, FEATURE_DIM) float32 and ``preorder_position`` (M,) int32, indexed by
  ``leaf_offsets`` (N+1,) int64. The tree arrays of a CompactAST (parent, kinds, extents) are not
  stored: the model needs only leaves.
* ``PER_STORE`` (``features.perstore.npz``): MetaSchedule's ``PerStoreFeature`` rows, one per written
  buffer, what the XGB and MLP baselines read. Row array ``features`` (M, 164) float32, indexed by
  ``row_offsets`` (N+1,) int64.

Every cache file (N programs, M rows in total) also holds ``latency_s`` (N,) float64 (NaN = failed run),
``task_key`` (N,) str, ``record_id`` (N,) str, ``record_hash`` (N,) str (hash of the record's line),
``device`` (N, DEVICE_DESCRIPTOR_DIM) float32, ``target`` (N,) str (target JSON), plus
``feature_schema``, ``device_schema`` (of the descriptors) and ``source_digest`` (of the record and workload
files): a cache is stale when any of them differs (or, for ``device_schema``, is missing), and a cache
with no program is stale while its record file has records.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from tqdm import tqdm

from ..atomic_io import atomic_path
from ..device import DEVICE_SCHEMA_VERSION, device_descriptor, device_name
from ..features import (
    FEATURE_DIM,
    FEATURE_SCHEMA_VERSION,
    CompactAST,
    CompactASTFeaturizer,
    is_gpu_target,
)
from .dataset import TrainingData
from .layout import RECORD_FILE, TASK_FILE, WORKLOAD_FILE
from .per_store_features import PerStoreRecordFeaturizer
from .reader import MeasuredRecord, find_databases, read_database

logger = logging.getLogger(__name__)

_EMPTY_TREE = np.zeros(0, dtype=np.int32)

# A record featurizer maps one record to its per-row arrays ({name: (n_rows, ...)}); it may raise,
# and the record is then skipped with a warning.
RecordFeaturizer = Callable[[MeasuredRecord], dict[str, np.ndarray]]


@dataclass(frozen=True)
class FeatureKind:
    """One kind of per-program features, kept in its own cache file in each database directory.

    A program has any number of rows; the per-row arrays of all programs are concatenated and indexed
    by the ``offsets`` array. ``row_arrays``: (name, dtype, shape of one row) of each per-row array.
    ``make_featurizer`` builds a fresh record featurizer (it may keep state, e.g. one TuneContext per task).
    """

    name: str
    cache_file: str
    schema: str  # stored in the file; a cache written under another schema is stale
    row_arrays: tuple[tuple[str, type, tuple[int, ...]], ...]
    offsets: str
    make_featurizer: Callable[[], RecordFeaturizer]


def _compact_ast_featurizer() -> RecordFeaturizer:
    fz = CompactASTFeaturizer()

    def featurize(rec: MeasuredRecord) -> dict[str, np.ndarray]:
        ast = fz.featurize([rec.scheduled_mod()], is_gpu_target(rec.target))[0]
        return {"leaf_features": ast.leaf_features, "preorder_position": ast.preorder_position}

    return featurize


COMPACT_AST = FeatureKind(
    name="cdmpp", cache_file="features.cdmpp.npz", schema=FEATURE_SCHEMA_VERSION,
    row_arrays=(("leaf_features", np.float32, (FEATURE_DIM,)), ("preorder_position", np.int32, ())),
    offsets="leaf_offsets", make_featurizer=_compact_ast_featurizer)
PER_STORE_DIM = 164  # MetaSchedule PerStoreFeature(buffers_per_store=5, extract_workload=False)
PER_STORE = FeatureKind(
    name="perstore", cache_file="features.perstore.npz", schema="ms-per-store-feature-164-v1",
    row_arrays=(("features", np.float32, (PER_STORE_DIM,)),),
    offsets="row_offsets", make_featurizer=PerStoreRecordFeaturizer)
FEATURE_KINDS = {k.name: k for k in (COMPACT_AST, PER_STORE)}

CACHE_FILE = COMPACT_AST.cache_file


def _line_hashes(record_file: Path) -> dict[int, str]:
    out = {}
    with open(record_file, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out[lineno] = hashlib.blake2b(line.strip(), digest_size=8).hexdigest()
    return out


def _source_digest(directory: Path) -> str:
    """Digest of everything a cache is made from: the record file and the workload file (the records
    cannot be read without it, so a cache made while it was missing must not outlive its return)."""
    h = hashlib.blake2b(digest_size=16)
    for name in (RECORD_FILE, WORKLOAD_FILE):
        path = directory / name
        h.update(f"{name}:{path.exists()}\0".encode())
        if path.exists():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()


def _cache_is_fresh(cache: Path, directory: Path, schema: str = FEATURE_SCHEMA_VERSION) -> bool:
    """Fresh = same feature and device-descriptor schemas, the database files are byte-for-byte what was
    featurized, and the cache holds programs if the record file has records (an empty cache of a
    non-empty database means nothing could be read last time: try again, and say so)."""
    if not cache.exists():
        return False
    try:
        with np.load(cache, allow_pickle=False) as z:
            fresh = (str(z["feature_schema"]) == schema and "device_schema" in z.files
                     and str(z["device_schema"]) == DEVICE_SCHEMA_VERSION
                     and str(z["source_digest"]) == _source_digest(directory))
            empty = len(z["latency_s"]) == 0
    except Exception as e:  # noqa: BLE001 - an unreadable cache is simply rebuilt
        logger.warning("%s: unreadable feature cache (%s), rebuilding", cache, e)
        return False
    if fresh and empty and _has_records(directory / RECORD_FILE):
        logger.warning("%s: the cache holds no program although %s has records; featurizing again", cache,
                       directory / RECORD_FILE)
        return False
    return fresh


def _has_records(record_file: Path) -> bool:
    with open(record_file, "rb") as f:
        return any(line.strip() for line in f)


def featurize_database(directory: str | os.PathLike, force: bool = False, progress: bool = True,
                       kind: FeatureKind = COMPACT_AST) -> Path:
    """Write (or keep, when fresh) the ``kind`` feature cache of one database directory; returns its path."""
    directory = Path(directory)
    cache = directory / kind.cache_file
    if not force and _cache_is_fresh(cache, directory, kind.schema):
        return cache
    digest = _source_digest(directory)
    report = read_database(directory)
    for p in report.problems:
        logger.warning("skipped: %s", p)
    hashes = _line_hashes(directory / RECORD_FILE)
    featurize = kind.make_featurizer()
    rows: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in kind.row_arrays}
    offsets, lat, task, rid, rhash, dev, tgt = [0], [], [], [], [], [], []
    descriptors: dict[str, np.ndarray] = {}
    for rec in tqdm(report.records, desc=f"featurize {directory.name} ({kind.name})", disable=not progress,
                    leave=False):
        key = str(rec.target)
        if key not in descriptors:
            descriptors[key] = device_descriptor(rec.target)
        try:
            program_rows = featurize(rec)
        except Exception as e:  # noqa: BLE001
            logger.warning("%s: cannot replay or featurize, skipped: %s: %s", rec.source, type(e).__name__, e)
            continue
        for name, program_list in rows.items():
            program_list.append(program_rows[name])
        offsets.append(offsets[-1] + len(program_rows[kind.row_arrays[0][0]]))
        lat.append(np.nan if rec.latency_s is None else rec.latency_s)
        task.append(rec.task_key)
        lineno = int(rec.source.rsplit(":", 1)[1])
        rid.append(f"{RECORD_FILE}:{lineno}")
        rhash.append(hashes[lineno])
        dev.append(descriptors[key])
        tgt.append(key)
    arrays = {name: np.concatenate(rows[name]).astype(dtype) if rows[name] else np.zeros((0, *shape), dtype)
              for name, dtype, shape in kind.row_arrays}
    arrays.update(
        {kind.offsets: np.asarray(offsets, dtype=np.int64)}, latency_s=np.asarray(lat, dtype=np.float64),
        task_key=np.asarray(task, dtype=str), record_id=np.asarray(rid, dtype=str),
        record_hash=np.asarray(rhash, dtype=str),
        device=np.stack(dev).astype(np.float32) if dev else np.zeros((0, 0), np.float32),
        target=np.asarray(tgt, dtype=str),
        feature_schema=np.asarray(kind.schema), device_schema=np.asarray(DEVICE_SCHEMA_VERSION),
        source_digest=np.asarray(digest))
    with atomic_path(cache) as tmp:
        np.savez_compressed(tmp, **arrays)
    return cache


def featurize_databases(paths: list[str | os.PathLike], force: bool = False, progress: bool = True,
                        kind: FeatureKind = COMPACT_AST) -> list[Path]:
    return [featurize_database(d, force, progress, kind) for d in find_databases(paths)]


@dataclass
class CachedFeatures:
    """The valid records of some databases, read from their feature caches.

    ``rows[name][i]``: program i's rows of the per-row array ``name`` (views into the cache arrays);
    ``latencies``: (N,) seconds, > 0; ``groups``: (N,) task key; ``device``: (N, D) descriptor or None;
    ``record_ids``: (N,) ``"<database dir>/<record file>:<line>"``; ``device_names``: (N,) short name of
    the device each record was measured on (``device_name``: 'llvm/znver5')."""

    rows: dict[str, list[np.ndarray]]
    latencies: np.ndarray
    groups: np.ndarray
    device: np.ndarray | None
    record_ids: np.ndarray
    device_names: np.ndarray

    def __len__(self) -> int:
        return len(self.latencies)

    def subset(self, idx: np.ndarray) -> "CachedFeatures":
        return CachedFeatures({k: [v[i] for i in idx] for k, v in self.rows.items()}, self.latencies[idx],
                              self.groups[idx], None if self.device is None else self.device[idx], self.record_ids[idx],
                              self.device_names[idx])


def same_records(a: CachedFeatures, b: CachedFeatures) -> tuple[CachedFeatures, CachedFeatures, int]:
    """Both restricted to the records both hold, in ``a``'s order, and how many records of the larger one
    were left out (a record one featurizer could not handle is in only one cache)."""
    order_b = {rid: i for i, rid in enumerate(b.record_ids.tolist())}
    ia = np.array([i for i, rid in enumerate(a.record_ids.tolist()) if rid in order_b], dtype=int)
    ib = np.array([order_b[rid] for rid in a.record_ids[ia].tolist()], dtype=int)
    return a.subset(ia), b.subset(ib), max(len(a), len(b)) - len(ia)


def load_cached_features(paths: list[str | os.PathLike], kind: FeatureKind = COMPACT_AST,
                         progress: bool = True) -> tuple[CachedFeatures, dict]:
    """The ``kind`` features of the valid records under ``paths``, from their caches (featurizing stale
    or missing ones first), and facts about them: ``{"targets": [...], "n_failed": int, "n_databases":
    int, "task_names": {task key: name}}``. A task's name is the ``name`` in its ``task.json`` when
    there is one, else its directory's name. Failed runs are in the caches but are not returned."""
    rows: dict[str, list[np.ndarray]] = {name: [] for name, _, _ in kind.row_arrays}
    lat, groups, dev, record_ids, device_names = [], [], [], [], []
    short_names: dict[str, str] = {}  # target JSON -> device_name
    targets: set[str] = set()
    task_names: dict[str, str] = {}
    n_failed = 0
    caches = featurize_databases(paths, progress=progress, kind=kind)
    for cache in caches:
        with np.load(cache, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # each z[k] decompresses again: read every array once
        targets.update(arrays["target"].tolist())
        name = _task_name(cache.parent)
        for key in np.unique(arrays["task_key"]).tolist():
            task_names.setdefault(key, name)
        off = arrays[kind.offsets]
        valid = np.nonzero(~np.isnan(arrays["latency_s"]))[0]
        n_failed += len(arrays["latency_s"]) - len(valid)
        for i in valid:
            for array_name, program_list in rows.items():
                program_list.append(arrays[array_name][off[i]:off[i + 1]])
        lat.append(arrays["latency_s"][valid])
        groups.append(arrays["task_key"][valid])
        dev.extend(arrays["device"][valid])
        record_ids.extend(f"{cache.parent}/{rid}" for rid in arrays["record_id"][valid])
        for target in arrays["target"][valid].tolist():
            if target not in short_names:
                short_names[target] = device_name(tvm.target.Target(target))
            device_names.append(short_names[target])
    features = CachedFeatures(rows, np.concatenate(lat) if lat else np.zeros(0),
                              np.concatenate(groups) if groups else np.zeros(0, dtype=str),
                              np.stack(dev) if dev else None, np.asarray(record_ids, dtype=str),
                              np.asarray(device_names, dtype=str))
    facts = {"targets": sorted(targets), "n_failed": n_failed, "n_databases": len(caches), "task_names": task_names}
    return features, facts


def _task_name(directory: Path) -> str:
    try:
        return str(json.loads((directory / TASK_FILE).read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return directory.name


def load_cached_training_data(paths: list[str | os.PathLike]) -> tuple[TrainingData, dict]:
    """TrainingData (compact ASTs) of the valid records under ``paths``, from their feature caches
    (featurizing stale or missing ones first), and facts about it (see ``load_cached_features``)."""
    cached, facts = load_cached_features(paths, COMPACT_AST)
    return to_training_data(cached), facts


def to_training_data(cached: CachedFeatures) -> TrainingData:
    """The compact ASTs of ``COMPACT_AST`` features as the model's TrainingData."""
    asts = [CompactAST(lf, pp, _EMPTY_TREE, _EMPTY_TREE, _EMPTY_TREE)
            for lf, pp in zip(cached.rows["leaf_features"], cached.rows["preorder_position"])]
    return TrainingData(asts, cached.latencies, cached.groups, cached.device)
