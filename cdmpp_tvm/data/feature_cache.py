"""Featurized datasets on disk: ``cdmpp-tvm featurize``.

Replaying a record's trace and walking its TIR costs a few ms; training reads the same records many
times, so the compact ASTs are stored once, compressed (``np.savez_compressed``), one file per
database directory, keyed by record: each program carries the ``file:line`` of its record and a hash
of that line, and the file carries a digest of the record file, so a database that changed since it
was featurized is detected and re-featurized.

Arrays in a cache file (N programs, M leaves in total):
``leaf_features`` (M, FEATURE_DIM) float32, ``preorder_position`` (M,) int32, ``leaf_offsets`` (N+1,)
int64, ``latency_s`` (N,) float64 (NaN = failed run), ``task_key`` (N,) str, ``record_id`` (N,) str,
``record_hash`` (N,) str (hash of the record's line), ``device`` (N, DEVICE_DESCRIPTOR_DIM) float32, ``target`` (N,) str (target JSON),
plus ``feature_schema`` and ``source_digest`` (of the whole record file: a cache is stale when it differs).
The tree arrays of a CompactAST (parent, kinds, extents) are not stored: the model needs only leaves.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..device import device_descriptor
from ..features import (
    FEATURE_DIM,
    FEATURE_SCHEMA_VERSION,
    CompactAST,
    CompactASTFeaturizer,
    is_gpu_target,
)
from ..model.training import TrainingData
from .reader import RECORD_FILE, find_databases, read_database

logger = logging.getLogger(__name__)

CACHE_FILE = "features.cdmpp.npz"
_EMPTY_TREE = np.zeros(0, dtype=np.int32)


def _line_hashes(record_file: Path) -> dict[int, str]:
    out = {}
    with open(record_file, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                out[lineno] = hashlib.blake2b(line.strip(), digest_size=8).hexdigest()
    return out


def _file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _cache_is_fresh(cache: Path, record_file: Path) -> bool:
    """Fresh = same feature schema and the record file is byte-for-byte what was featurized."""
    if not cache.exists():
        return False
    try:
        with np.load(cache, allow_pickle=False) as z:
            return (str(z["feature_schema"]) == FEATURE_SCHEMA_VERSION
                    and str(z["source_digest"]) == _file_digest(record_file))
    except Exception as e:  # noqa: BLE001 - an unreadable cache is simply rebuilt
        logger.warning("%s: unreadable feature cache (%s), rebuilding", cache, e)
        return False


def featurize_database(directory: str | os.PathLike, force: bool = False, progress: bool = True) -> Path:
    """Write (or keep, when fresh) the feature cache of one database directory; returns its path."""
    directory = Path(directory)
    cache = directory / CACHE_FILE
    if not force and _cache_is_fresh(cache, directory / RECORD_FILE):
        return cache
    digest = _file_digest(directory / RECORD_FILE)
    report = read_database(directory)
    for p in report.problems:
        logger.warning("skipped: %s", p)
    hashes = _line_hashes(directory / RECORD_FILE)
    fz = CompactASTFeaturizer()
    feats, pos, offsets, lat, task, rid, rhash, dev, tgt = [], [], [0], [], [], [], [], [], []
    descriptors: dict[str, np.ndarray] = {}
    for rec in tqdm(report.records, desc=f"featurize {directory.name}", disable=not progress, leave=False):
        key = str(rec.target)
        if key not in descriptors:
            descriptors[key] = device_descriptor(rec.target)
        try:
            ast = fz.featurize([rec.scheduled_mod()], is_gpu_target(rec.target))[0]
        except Exception as e:  # noqa: BLE001
            logger.warning("%s: cannot replay or featurize, skipped: %s: %s", rec.source, type(e).__name__, e)
            continue
        feats.append(ast.leaf_features)
        pos.append(ast.preorder_position)
        offsets.append(offsets[-1] + ast.n_leaves)
        lat.append(np.nan if rec.latency_s is None else rec.latency_s)
        task.append(rec.task_key)
        rid.append(f"{RECORD_FILE}:{rec.source.rsplit(':', 1)[1]}")
        rhash.append(hashes[int(rec.source.rsplit(":", 1)[1])])
        dev.append(descriptors[key])
        tgt.append(key)
    arrays = dict(
        leaf_features=np.concatenate(feats) if feats else np.zeros((0, FEATURE_DIM), np.float32),
        preorder_position=np.concatenate(pos) if pos else np.zeros(0, np.int32),
        leaf_offsets=np.asarray(offsets, dtype=np.int64), latency_s=np.asarray(lat, dtype=np.float64),
        task_key=np.asarray(task, dtype=str), record_id=np.asarray(rid, dtype=str),
        record_hash=np.asarray(rhash, dtype=str),
        device=np.stack(dev).astype(np.float32) if dev else np.zeros((0, 0), np.float32),
        target=np.asarray(tgt, dtype=str),
        feature_schema=np.asarray(FEATURE_SCHEMA_VERSION), source_digest=np.asarray(digest))
    tmp = cache.with_name(f".{cache.name}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, cache)
    return cache


def featurize_databases(paths: list[str | os.PathLike], force: bool = False, progress: bool = True) -> list[Path]:
    return [featurize_database(d, force, progress) for d in find_databases(paths)]


def load_cached_training_data(paths: list[str | os.PathLike]) -> tuple[TrainingData, dict]:
    """TrainingData of the valid records under ``paths``, from their feature caches (featurizing
    stale or missing ones first), and facts about it: ``{"targets": [...], "n_failed": int,
    "n_databases": int}``. Failed runs are in the caches but are not regression targets."""
    asts, lat, groups, dev = [], [], [], []
    targets: set[str] = set()
    n_failed = 0
    caches = featurize_databases(paths)
    for cache in caches:
        with np.load(cache, allow_pickle=False) as z:
            off, lf, pp = z["leaf_offsets"], z["leaf_features"], z["preorder_position"]
            targets.update(z["target"].tolist())
            for i in range(len(off) - 1):
                latency = float(z["latency_s"][i])
                if np.isnan(latency):
                    n_failed += 1
                    continue
                asts.append(CompactAST(lf[off[i]:off[i + 1]], pp[off[i]:off[i + 1]], _EMPTY_TREE, _EMPTY_TREE,
                                       _EMPTY_TREE))
                lat.append(latency)
                groups.append(str(z["task_key"][i]))
                dev.append(z["device"][i])
    data = TrainingData(asts, np.asarray(lat), np.asarray(groups), np.stack(dev) if dev else None)
    return data, {"targets": sorted(targets), "n_failed": n_failed, "n_databases": len(caches)}
