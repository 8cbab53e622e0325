"""Measured data: collecting it (``collect``, ``collect_selection``, ``measure``, ``manifest``), where it lies
(``layout``, ``database_files``), reading it (``reader``), featurizing it once (``feature_cache``), the
dataset type models train on (``dataset``), and how it is split for honest evaluation (``splits``,
``protocol``); ``data_card`` prints a collection's tables."""
from .collect import collect, interleave_by_source, is_single_program, measured_workloads, phase_seed
from .collect_selection import collect_from_selection
from .dataset import TrainingData, split_by_group
from .layout import MANIFEST, RECORD_FILE, TASK_CACHE, TASK_FILE, WORKLOAD_FILE, file_name_part, task_dir_name
from .manifest import task_totals, valid_per_hour
from .measure import CollectConfig, RPCSettings, measure_candidates
from .reader import MeasuredRecord, ReadReport, find_databases, latency_of, read_database, read_databases

__all__ = [
    "CollectConfig", "MANIFEST", "MeasuredRecord", "RECORD_FILE", "RPCSettings", "ReadReport", "TASK_CACHE", "TASK_FILE",
    "TrainingData", "WORKLOAD_FILE", "collect", "collect_from_selection", "file_name_part", "find_databases",
    "interleave_by_source", "is_single_program", "latency_of", "measure_candidates", "measured_workloads", "phase_seed", "read_database", "read_databases",
    "split_by_group", "task_dir_name", "task_totals", "valid_per_hour",
]
