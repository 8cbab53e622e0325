"""Register only the tensor intrinsics a target needs, so the first TuneContext is fast.

For apache-tvm 0.27.0.post1.

Why: ``ms.TuneContext.__init__`` runs ``import tvm.s_tir.tensor_intrin``, whose ``__init__``
imports every backend's intrinsics. Parsing the CUDA ones alone takes about 55 s on a 2-core box
(the whole package about 60-75 s), which every tuning process pays before its first CPU trial.
An llvm x86 target needs only ``tensor_intrin.x86`` (under a second), and it does need that one:
with an AVX-512/VNNI ``mcpu`` the space generator looks up ``dot_16x4_vnni`` and fails if it is not
registered, so the package cannot simply be skipped.

How: put a stand-in package module (a ModuleType with the real ``__path__``) into
``sys.modules["tvm.s_tir.tensor_intrin"]`` and import only the needed submodules into it. Importing
a submodule registers its intrinsics in TVM's global (C++) registry, which is all MetaSchedule uses;
TuneContext's own ``import tvm.s_tir.tensor_intrin`` then finds the stand-in and does nothing.

Caveat: while the stand-in is installed, a bare ``import tvm.s_tir.tensor_intrin`` registers
nothing more. Call ``register_tensor_intrinsics(target)`` for every target before tuning for it;
for a target that needs the full set (cuda and every non-llvm kind) it replaces the stand-in with
the real package, importing only the submodules not yet loaded (re-running one would raise, since
TensorIntrin.register refuses duplicates).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

import tvm
from tvm.target import Target

PACKAGE = "tvm.s_tir.tensor_intrin"

# Attribute that marks our stand-in, so we never mistake it for the real package or vice versa.
_STAND_IN_MARK = "__cdmpp_partial_tensor_intrin__"

# llvm target triple prefix -> the submodule holding that CPU's intrinsics.
_LLVM_SUBMODULE_BY_TRIPLE_PREFIX = {
    "x86_64": "x86",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm_cpu",
    "arm": "arm_cpu",
    "riscv": "riscv_cpu",
}


def register_tensor_intrinsics(target: Target | dict | str) -> list[str]:
    """Make sure the tensor intrinsics ``target`` can use are registered; idempotent.

    For an llvm target whose CPU family is known, imports only that family's submodule (behind the
    stand-in package). For anything else, imports the whole package. Returns the names of the
    submodules now loaded, e.g. ``["x86"]``, or ``["*"]`` once the real package is loaded.
    """
    target = target if isinstance(target, Target) else Target(target)
    submodule = _llvm_submodule_for(target)
    if submodule is None:
        _import_full_package()
    else:
        _import_submodule_behind_stand_in(submodule)
    return loaded_tensor_intrin_submodules()


def loaded_tensor_intrin_submodules() -> list[str]:
    """Submodules of tvm.s_tir.tensor_intrin imported so far; ``["*"]`` if the real package is."""
    package = sys.modules.get(PACKAGE)
    if package is None:
        return []
    if not getattr(package, _STAND_IN_MARK, False):
        return ["*"]
    prefix = PACKAGE + "."
    return sorted(
        name[len(prefix) :] for name in sys.modules if name.startswith(prefix)
    )


def _llvm_submodule_for(target: Target) -> str | None:
    if target.kind.name != "llvm":
        return None
    triple = str(target.attrs["mtriple"]) if "mtriple" in target.attrs else ""
    triple = triple or tvm.target.codegen.llvm_get_system_triple()
    for prefix, submodule in _LLVM_SUBMODULE_BY_TRIPLE_PREFIX.items():
        if triple.startswith(prefix):
            return submodule
    return None


def _import_submodule_behind_stand_in(submodule: str) -> None:
    if PACKAGE not in sys.modules:
        sys.modules[PACKAGE] = _make_stand_in()
    # With the real package loaded this is a cached no-op; with the stand-in it registers just
    # this submodule's intrinsics.
    importlib.import_module(f"{PACKAGE}.{submodule}")


def _make_stand_in() -> types.ModuleType:
    # find_spec imports the parent (tvm.s_tir), not the package itself.
    spec = importlib.util.find_spec(PACKAGE)
    stand_in = types.ModuleType(
        PACKAGE,
        "Partial stand-in for tvm.s_tir.tensor_intrin, installed by tvm_patches.",
    )
    # A __path__ is what lets `import tvm.s_tir.tensor_intrin.x86` find the real submodule.
    stand_in.__path__ = list(spec.submodule_search_locations)
    setattr(stand_in, _STAND_IN_MARK, True)
    return stand_in


def _import_full_package() -> None:
    package = sys.modules.get(PACKAGE)
    if package is not None and getattr(package, _STAND_IN_MARK, False):
        # Drop the stand-in and run the real __init__; submodules already in sys.modules are
        # reused rather than re-executed, so no intrinsic is registered twice.
        del sys.modules[PACKAGE]
    importlib.import_module(PACKAGE)
