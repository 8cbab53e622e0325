"""Compact-AST program features: the tree walk (``compact_ast.py``, compiled in ``compact_ast_native.cc``
and loaded by ``native.py``), the leaf-feature schema (``schema.py``), buffer-access analysis
(``buffer_access.py``), the cached featurizer and batching (``featurizer.py``) and the positional encoding."""
from .compact_ast import CompactAST, is_gpu_target
from .featurizer import CompactASTFeaturizer, LeafBatch, collate
from .native import extract_compact_ast, native_status
from .positional_encoding import sinusoidal_encoding
from .schema import FEATURE_DIM, FEATURE_NAMES, FEATURE_SCHEMA_VERSION, MAX_BUFFERS_PER_STORE

__all__ = [
    "FEATURE_DIM", "FEATURE_NAMES", "FEATURE_SCHEMA_VERSION", "MAX_BUFFERS_PER_STORE", "CompactAST",
    "CompactASTFeaturizer", "LeafBatch", "collate", "extract_compact_ast", "is_gpu_target", "native_status",
    "sinusoidal_encoding",
]
