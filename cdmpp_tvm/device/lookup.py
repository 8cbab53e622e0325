"""Target -> table entry: which ``KNOWN_DEVICES`` entry a TVM target means, and an entry's target.

``device_for_target``: an explicit override (a table name or a ``DeviceSpec``), else the target's ``tag`` (a
dict target may carry any tag, e.g. ``"nvidia/nvidia-h200"``), else for llvm its ``mcpu`` (preferring the
entry with the target's ``num-cores``), for cuda its ``arch`` (``sm_90a`` -> ``sm_90``; ties broken by
``l2_cache_size_bytes``, then by table order: the H100 before the H200, which has the same arch and L2, so an
H200 needs its tag or the override). A target that matches no entry gets None (its descriptor is then built
from what the target itself says, see ``descriptor``)."""
from __future__ import annotations

import re

import tvm

from .table import KNOWN_DEVICES, DeviceSpec, get_device


def _attr(target, key: str, default=None):
    attrs = target.attrs
    return attrs[key] if key in attrs else default


def _arch_number(arch: str | None) -> int | None:
    """'sm_90a' -> 90, 'sm_80' -> 80, None/garbage -> None."""
    m = re.match(r"sm_(\d+)", str(arch or ""))
    return int(m.group(1)) if m else None


def device_for_target(target, override: "str | DeviceSpec | None" = None) -> DeviceSpec | None:
    """The table entry a target means (see the module docstring), or None when no entry matches."""
    if isinstance(override, DeviceSpec):
        return override
    if override is not None:
        return get_device(override)
    tag = str(getattr(target, "tag", "") or "")
    if tag:
        for spec in KNOWN_DEVICES.values():
            if tag in spec.tags or tag == spec.name:
                return spec
    kind = target.kind.name
    if kind == "llvm":
        mcpu = str(_attr(target, "mcpu", "") or "")
        if not mcpu:
            return None
        cores = int(_attr(target, "num-cores", 0) or 0)
        same = [s for s in KNOWN_DEVICES.values() if s.kind == "cpu" and s.mcpu == mcpu]
        exact = [s for s in same if s.physical_cores == cores]
        return (exact or same or [None])[0]
    if kind == "cuda":
        arch = _arch_number(_attr(target, "arch"))
        if arch is None:
            return None
        same = [s for s in KNOWN_DEVICES.values() if s.kind == "gpu" and _arch_number(s.arch) == arch]
        l2 = _attr(target, "l2_cache_size_bytes")
        if l2 is not None:
            by_l2 = [s for s in same if s.l2_mb is not None and abs(s.l2_mb * 2 ** 20 - int(l2)) < 2 ** 19]
            same = by_l2 or same
        return same[0] if same else None
    return None


def device_target(name_or_spec: "str | DeviceSpec"):
    """The ``tvm.target.Target`` of a table entry."""
    spec = name_or_spec if isinstance(name_or_spec, DeviceSpec) else get_device(name_or_spec)
    return tvm.target.Target(dict(spec.target))


def device_name(target) -> str:
    """A short human-readable name for a target: 'llvm/znver1' or 'cuda/sm_90a'."""
    kind = target.kind.name
    attrs = target.attrs
    detail = str(attrs["mcpu"]) if "mcpu" in attrs else (str(attrs["arch"]) if "arch" in attrs else "generic")
    return f"{kind}/{detail}"
