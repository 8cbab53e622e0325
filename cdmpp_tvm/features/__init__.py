"""Compact-AST program features (see ``compact_ast.py``)."""
from .compact_ast import (
    FEATURE_DIM,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    CompactAST,
    extract_compact_ast,
    is_gpu_target,
)
from .featurizer import CompactASTFeaturizer, LeafBatch, collate
from .positional_encoding import sinusoidal_encoding

__all__ = [
    "FEATURE_DIM", "FEATURE_NAMES", "FEATURE_SCHEMA_VERSION", "CompactAST", "CompactASTFeaturizer", "LeafBatch",
    "collate", "extract_compact_ast", "is_gpu_target", "sinusoidal_encoding",
]
