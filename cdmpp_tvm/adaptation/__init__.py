"""Adapting to a new device: choosing which programs to measure on it (``select``: KMeans over the
model's embeddings, CDMPP section 4.1) and fine-tuning a checkpoint on its records (``finetune``)."""
from .finetune import FinetuneResult, default_finetune_config, finetune, finetune_databases
from .select import METHODS, coverage_distance, embed_programs, kmeans_select, random_select, select_programs

__all__ = [
    "FinetuneResult", "METHODS", "coverage_distance", "default_finetune_config", "embed_programs", "finetune",
    "finetune_databases", "kmeans_select", "random_select", "select_programs",
]
