"""The compiled compact-AST extractor (``compact_ast_native.cc``) and ``extract_compact_ast``, which uses it.

The C++ port walks the same tree and computes the same leaf features as the Python walker
(``compact_ast.extract_compact_ast_python``, the reference), bit for bit in float32, about ten times
faster. It is compiled on first use with ``tvm_ffi.cpp.load_inline`` (a C++17 compiler and ninja are
needed) and cached in ``$TVM_FFI_CACHE_DIR/native-<hash>`` or ``~/.cache/cdmpp-tvm/native-<hash>``, the
hash covering the source, the compile flags, the tvm-ffi version and the machine.

Selection: the native path is used whenever it loaded. When it cannot load (no compiler, a TVM whose node
types or fields differ, ...) every program goes to the Python walker, with one warning giving the reason.
When the native walker refuses one program (a construct it cannot reproduce exactly, such as an IntImm
beyond int64; it raises rather than guess), that program goes to the Python walker, with one warning per
process. ``native_status()`` reports whether it loaded, why not, and how many programs took the Python path.
``CDMPP_NATIVE_FEATURES=0`` forces the Python walker (tests, debugging).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import tvm
import tvm_ffi
import tvm_ffi.cpp
from tvm import tirx
from tvm.s_tir import stmt as s_stmt
from tvm.tirx.buffer import BufferType

try:  # a dependency (setup.py), but the Python walker works without it
    import ninja
except ImportError:
    ninja = None

from .compact_ast import _MATH_FUNCS, CompactAST, extract_compact_ast_python
from .schema import COL, FEATURE_DIM

logger = logging.getLogger("cdmpp_tvm.features")

SOURCE = Path(__file__).with_name("compact_ast_native.cc")
ENV_SWITCH = "CDMPP_NATIVE_FEATURES"
MODULE_NAME = "cdmpp_compact_ast"
# -ffp-contract=off: no fused multiply-add, so every product and sum rounds as in Python.
CFLAGS = ["-O2", "-std=c++17", "-ffp-contract=off"]

# The Python class compact_ast.py dispatches on for each node kind the C++ walker knows (names as in
# its kKindNames); the C++ side resolves their type keys, so the two cannot disagree on what a node is.
_KIND_CLASSES = {
    "For": tirx.For, "SeqStmt": tirx.SeqStmt, "SBlockRealize": s_stmt.SBlockRealize, "SBlock": s_stmt.SBlock,
    "BufferStore": tirx.BufferStore, "IfThenElse": tirx.IfThenElse, "AllocBuffer": tirx.AllocBuffer,
    "PrimFunc": tirx.PrimFunc, "Var": tirx.Var, "IntImm": tirx.IntImm, "FloatImm": tirx.FloatImm,
    "StringImm": tvm.ir.StringImm, "TensorLoad": tvm.ir.TensorLoad, "Call": tvm.ir.Call, "Add": tirx.Add,
    "Sub": tirx.Sub, "Mul": tirx.Mul, "Div": tirx.Div, "Mod": tirx.Mod, "FloorDiv": tirx.FloorDiv,
    "FloorMod": tirx.FloorMod, "Min": tirx.Min, "Max": tirx.Max, "EQ": tirx.EQ, "NE": tirx.NE, "LT": tirx.LT,
    "LE": tirx.LE, "GT": tirx.GT, "GE": tirx.GE, "And": tirx.And, "Or": tirx.Or, "Not": tirx.Not,
    "Select": tirx.Select, "Cast": tirx.Cast, "IterVar": tirx.IterVar, "BufferType": BufferType,
    "PrimType": tvm.ir.PrimType,
}


class _Native:
    """Process-wide state of the compiled extractor: loaded once, on first use."""

    def __init__(self):
        self.lock = threading.Lock()
        self.tried = False
        self.extract = None  # the compiled function, when loaded
        self.reason: str | None = None  # why the Python walker is used, when it is
        self.native_calls = 0
        self.fallback_calls = 0
        self.warned_program = False
        self.build_seconds: float | None = None

    def load(self):
        if self.tried:  # the hot path: no lock once loaded (or given up)
            return self.extract
        with self.lock:
            if not self.tried:
                self._load()
                self.tried = True
        return self.extract

    def _load(self) -> None:
        if os.environ.get(ENV_SWITCH, "1").strip() == "0":
            self.reason = f"disabled by {ENV_SWITCH}=0"
            logger.info("compact-AST features: Python walker (%s)", self.reason)
            return
        self.reason = missing_build_tools()
        if self.reason is None:
            try:
                self.extract = self._build_and_configure()
            except Exception as err:  # noqa: BLE001 - any build or load failure means: use Python
                self.reason = f"{type(err).__name__}: {_shorten(str(err))}"
        if self.extract is None:
            logger.warning("native compact-AST featurizer unavailable, using the slower Python walker: %s",
                           self.reason)

    def _build_and_configure(self):
        build_dir = build_directory()
        fresh = not (build_dir / f"{MODULE_NAME}.so").exists()
        start = time.perf_counter()
        module = tvm_ffi.cpp.load_inline(
            MODULE_NAME, cpp_sources=SOURCE.read_text(), functions=["cdmpp_configure", "cdmpp_extract"],
            extra_cflags=CFLAGS, build_directory=str(build_dir))
        if fresh:
            self.build_seconds = time.perf_counter() - start
            logger.info("compiled the native compact-AST featurizer in %.1f s (cached in %s)",
                        self.build_seconds, build_dir)
        type_keys = {kind: cls.__tvm_ffi_type_info__.type_key for kind, cls in _KIND_CLASSES.items()}
        module.cdmpp_configure(type_keys, dict(COL), sorted(_MATH_FUNCS), FEATURE_DIM)
        return module.cdmpp_extract

    def program_fallback(self, err: Exception) -> None:
        self.fallback_calls += 1
        if not self.warned_program:
            self.warned_program = True
            logger.warning("native compact-AST featurizer refused a program, the Python walker featurizes it "
                           "(warned once; native_status() counts them): %s: %s", type(err).__name__,
                           _shorten(str(err)))


_NATIVE = _Native()


def _shorten(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " ..."


def missing_build_tools() -> str | None:
    """Why the extension cannot be compiled here (no C++ compiler, no ninja), or None."""
    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        return f"no C++ compiler ({cxx!r} is not on PATH; set CXX)"
    if shutil.which("ninja") is None and not _put_pip_ninja_on_path():
        return "ninja is not on PATH (tvm_ffi.cpp.load_inline builds with it; pip install ninja)"
    return None


def _put_pip_ninja_on_path() -> bool:
    """The ``ninja`` wheel (a dependency) puts its binary in the environment's bin directory, which is not
    on PATH when Python runs from a virtual environment that was not activated: add that directory."""
    bin_dir = getattr(ninja, "BIN_DIR", None)
    if not bin_dir or shutil.which("ninja", path=bin_dir) is None:
        return False
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    logger.info("using the ninja of the ninja wheel: %s added to PATH", bin_dir)
    return True


def build_directory() -> Path:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(CFLAGS).encode(), tvm_ffi.__version__.encode(),
                 platform.machine().encode()):
        digest.update(part)
        digest.update(b"\0")
    base = os.environ.get("TVM_FFI_CACHE_DIR") or Path.home() / ".cache" / "cdmpp-tvm"
    return Path(base).expanduser() / f"native-{digest.hexdigest()[:16]}"


def native_loaded() -> bool:
    """Whether the compiled extractor is in use (loading it if not tried yet)."""
    return _NATIVE.load() is not None


def native_status() -> dict:
    """Whether the compiled extractor is in use (loading it if not tried yet), why not, and how many
    programs the native and the Python walker featurized in this process."""
    _NATIVE.load()
    return {"loaded": _NATIVE.extract is not None, "reason": _NATIVE.reason,
            "fallback_calls": _NATIVE.fallback_calls, "native_calls": _NATIVE.native_calls,
            "build_seconds": _NATIVE.build_seconds}


def extract_compact_ast_native(func: tirx.PrimFunc, is_gpu: bool) -> CompactAST:
    """The compiled extractor alone: raises when it is not loaded or refuses ``func`` (tests, benchmarks)."""
    extract = _NATIVE.load()
    if extract is None:
        raise RuntimeError(f"native compact-AST featurizer not loaded: {_NATIVE.reason}")
    return _unpack(extract(func, bool(is_gpu)))


def extract_compact_ast(func: tirx.PrimFunc, is_gpu: bool) -> CompactAST:
    """Build the compact AST of one scheduled PrimFunc (``cand.sch.mod["main"]``): the compiled extractor
    when it loaded, else (or for a program it refuses) the Python walker; both give the same features."""
    extract = _NATIVE.load()
    if extract is not None:
        try:
            ast = _unpack(extract(func, bool(is_gpu)))
        except Exception as err:  # noqa: BLE001 - the Python walker decides (and raises if the program is bad)
            _NATIVE.program_fallback(err)
        else:
            _NATIVE.native_calls += 1
            return ast
    else:
        _NATIVE.fallback_calls += 1
    return extract_compact_ast_python(func, is_gpu)


def _unpack(raw: bytes) -> CompactAST:
    """The C++ output (int32 n_leaves, n_nodes; float32 leaf features; int32 preorder positions, parents,
    kinds, extents) as arrays. They share one writable buffer, like the Python walker's own arrays."""
    buf = bytearray(raw)
    n_leaves, n_nodes = (int(x) for x in np.frombuffer(buf, np.int32, 2))
    leaf_end = 8 + 4 * n_leaves * FEATURE_DIM
    leaf_features = np.frombuffer(buf, np.float32, n_leaves * FEATURE_DIM, 8).reshape(n_leaves, FEATURE_DIM)
    preorder = np.frombuffer(buf, np.int32, n_leaves, leaf_end)
    parent, node_kind, node_extent = np.frombuffer(buf, np.int32, 3 * n_nodes, leaf_end + 4 * n_leaves).reshape(3, n_nodes)
    return CompactAST(leaf_features=leaf_features, preorder_position=preorder, parent=parent, node_kind=node_kind,
                      node_extent=node_extent)
