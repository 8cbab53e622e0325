"""Targets that compile for the CPU we run on, and one parser for every target spec a user may type.

For apache-tvm 0.27.0.post1.

Why: in TVM 0.27 the CLI string form (``"llvm -num-cores 2"``) raises ValueError, and an llvm
target without ``mcpu`` makes LLVM emit generic x86-64 (SSE2) code, about 4x slower than code
for the real CPU, which also changes which schedules rank best. ``"mcpu": "native"`` is not
honoured (LLVM falls back to generic with only a log line), so the CPU name must come from
``tvm.target.codegen.llvm_get_system_cpu()``.
"""

from __future__ import annotations

import json
import os
import warnings

import tvm
from tvm.target import Target

ACCEPTED_SPEC_FORMS = (
    '"host" (llvm for this CPU, with mcpu and num-cores set), '
    'a JSON object such as \'{"kind": "llvm", "num-cores": 2, "mcpu": "znver4"}\', '
    'or a registered target tag such as "nvidia/nvidia-h100"'
)


def physical_cores() -> int:
    """Number of physical CPU cores (MetaSchedule's own default for tuning threads)."""
    try:
        import psutil  # MetaSchedule itself requires psutil, so this is normally present

        cores = psutil.cpu_count(logical=False)
    except ImportError:
        cores = None
    return cores or os.cpu_count() or 1


def host_target(num_cores: int | None = None) -> Target:
    """llvm target for this machine's CPU; num_cores defaults to the physical core count."""
    return Target(
        {
            "kind": "llvm",
            "num-cores": num_cores or physical_cores(),
            "mcpu": tvm.target.codegen.llvm_get_system_cpu(),
        }
    )


def resolve_target(spec: str) -> Target:
    """Turn "host", a JSON object string, or a target tag name into a Target.

    Raises ValueError naming the spec and the accepted forms for anything else (including
    plain kind names like "llvm", which would silently produce generic, slow CPU code).
    """
    text = spec.strip() if isinstance(spec, str) else spec
    if text == "host":
        return host_target()
    if isinstance(text, str) and text.startswith("{"):
        return _target_from_json(spec, text)
    if isinstance(text, str) and text in _tag_names():
        return Target(text)
    raise ValueError(
        f"Unrecognised target spec {spec!r}. Accepted forms: {ACCEPTED_SPEC_FORMS}."
    )


def _target_from_json(spec: str, text: str) -> Target:
    try:
        config = json.loads(text)
        target = Target(config)
    except (json.JSONDecodeError, ValueError, TypeError) as error:
        raise ValueError(
            f"Invalid target spec {spec!r}: {error}. Accepted forms: {ACCEPTED_SPEC_FORMS}."
        ) from error
    if target.kind.name == "llvm" and "mcpu" not in config:
        warnings.warn(
            f"Target spec {spec!r} has no mcpu: LLVM will emit generic x86-64 code, which runs "
            f'about 4x slower. Add "mcpu": "{tvm.target.codegen.llvm_get_system_cpu()}" '
            'or use "host".',
            stacklevel=3,
        )
    return target


def _tag_names() -> set[str]:
    tags = tvm.target.tag.list_tags()  # None in runtime-only TVM builds
    return set(tags.keys()) if tags is not None else set()
