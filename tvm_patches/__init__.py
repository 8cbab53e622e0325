"""Every adaptation of cdmpp-tvm to the released apache-tvm 0.27.0.post1, in one place.

Each module names the TVM version it is for and why it exists.

Importing this package first checks the installed apache-tvm / apache-tvm-ffi versions (from
package metadata, before tvm is imported) and raises RuntimeError with the pip command to fix
them, because the other modules use 0.27-only module names and apache-tvm-ffi 0.1.15.post2
segfaults while tuning.

Typical start of a tuning process::

    from tvm_patches import (make_builder, quiet_metaschedule_logging,
                             register_tensor_intrinsics, resolve_target)
    quiet_metaschedule_logging()
    target = resolve_target("host")
    register_tensor_intrinsics(target)   # before the first TuneContext for this target
    ms.tune_tir(..., target=target, builder=make_builder())
"""

from .ffi_version import REQUIRED_VERSIONS, check_tvm_versions

check_tvm_versions()

# Imported eagerly, not lazily: the function host_target shares its name with its module, and a
# lazy export would be shadowed by the submodule attribute once any module imported it.
from .candidates import sample_candidates
from .fast_builder import fast_build, make_builder
from .host_target import host_target, physical_cores, resolve_target
from .json_database import open_json_database
from .quiet_logging import quiet_metaschedule_logging, safe_metaschedule_logger_setup
from .tensor_intrin import loaded_tensor_intrin_submodules, register_tensor_intrinsics

__all__ = [
    "REQUIRED_VERSIONS",
    "check_tvm_versions",
    "fast_build",
    "host_target",
    "loaded_tensor_intrin_submodules",
    "make_builder",
    "open_json_database",
    "physical_cores",
    "quiet_metaschedule_logging",
    "register_tensor_intrinsics",
    "resolve_target",
    "safe_metaschedule_logger_setup",
    "sample_candidates",
]

# A crash fix, not a preference: without it any unnamed handler on MetaSchedule's logger (pytest >= 9
# adds one) makes every tuning call fail in create_loggers (quiet_logging.py says why).
safe_metaschedule_logger_setup()
