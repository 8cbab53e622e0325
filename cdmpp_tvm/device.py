"""Device descriptors: a fixed-length vector describing the hardware a latency was measured on.

It enters the model as a device embedding, so one model can serve several devices. This first version
describes a target from what the TVM target itself says (kind, cores, SIMD class, GPU limits); the
cross-device work extends it with a table of hardware facts.
"""
from __future__ import annotations

import math

import numpy as np

DEVICE_DESCRIPTOR_DIM = 16
DEVICE_SCHEMA_VERSION = "device-v1"

# SIMD width in bits implied by an LLVM CPU name (prefix match); unknown CPUs count as 128 (SSE2).
_SIMD_BITS = (("znver4", 512), ("znver5", 512), ("skylake-avx512", 512), ("cascadelake", 512), ("icelake", 512),
              ("sapphirerapids", 512), ("znver", 256), ("haswell", 256), ("broadwell", 256), ("skylake", 256),
              ("alderlake", 256), ("neoverse", 128), ("apple", 128))


def device_descriptor(target) -> np.ndarray:
    """A (DEVICE_DESCRIPTOR_DIM,) float32 vector for a ``tvm.target.Target``."""
    v = np.zeros(DEVICE_DESCRIPTOR_DIM, dtype=np.float32)
    kind = target.kind.name
    attrs = target.attrs
    if kind == "llvm":
        v[0] = 1.0
        cores = int(attrs["num-cores"]) if "num-cores" in attrs else 1
        mcpu = str(attrs["mcpu"]) if "mcpu" in attrs else ""
        simd = next((bits for prefix, bits in _SIMD_BITS if mcpu.startswith(prefix)), 128)
        v[2] = math.log2(max(cores, 1)) / 8.0
        v[3] = simd / 512.0
        v[4] = 1.0 if mcpu else 0.0  # generic code (no mcpu) runs very differently
    else:
        v[1] = 1.0
        for i, key in enumerate(("max_threads_per_block", "max_shared_memory_per_block", "thread_warp_size",
                                 "registers_per_block", "l2_cache_size_bytes")):
            if key in attrs:
                v[5 + i] = math.log2(float(int(attrs[key])) + 1.0) / 32.0
        arch = str(attrs["arch"]) if "arch" in attrs else ""
        digits = "".join(ch for ch in arch if ch.isdigit())
        if digits:
            v[10] = int(digits[:2]) / 100.0  # sm_90 -> 0.9
    return v


def device_name(target) -> str:
    """A short human-readable name for a target: 'llvm/znver1' or 'cuda/sm_90a'."""
    kind = target.kind.name
    attrs = target.attrs
    detail = str(attrs["mcpu"]) if "mcpu" in attrs else (str(attrs["arch"]) if "arch" in attrs else "generic")
    return f"{kind}/{detail}"
