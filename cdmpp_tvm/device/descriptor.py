"""Device descriptors: a fixed-length vector describing the hardware a latency was measured on.

It enters the model as a device embedding, so one model can serve several devices (CDMPP section 2.1).
Schema ``device-v2``: a descriptor is built from the TVM target *and* the hardware facts of the device the
target names (``lookup.device_for_target``):

* CPU: physical cores, SIMD width, L1d / L2 (per core) / L3 (total) cache sizes, base and boost clock;
* GPU: SMs, boost clock, memory bandwidth, shared memory per block (opt-in maximum) and per SM, L2 size,
  FP32 TFLOPS, memory size, compute capability.

A target that matches no table entry still gets a descriptor, from what the target itself says (cores, SIMD
class of its ``mcpu``, GPU limits) with typical values for the rest and the "known hardware" slot 0.
Descriptors depend only on the target and the table, never on the machine that computes them, so a feature
cache written on one machine is valid on another.

Every value is log-scaled where it spans orders of magnitude and mapped linearly so that the range of real
devices lies in about [0, 1] (``_DESCRIPTOR_LAYOUT`` documents each slot).
"""
from __future__ import annotations

import math

import numpy as np

from .lookup import _arch_number, _attr, device_for_target, device_target
from .table import DeviceSpec, get_device

DEVICE_DESCRIPTOR_DIM = 24
DEVICE_SCHEMA_VERSION = "device-v2"

# SIMD width in bits implied by an LLVM CPU name (prefix match); unknown CPUs count as 128 (SSE2).
_SIMD_BITS = (("znver4", 512), ("znver5", 512), ("skylake-avx512", 512), ("cascadelake", 512), ("icelake", 512),
              ("sapphirerapids", 512), ("emeraldrapids", 512), ("graniterapids", 512), ("znver", 256),
              ("haswell", 256), ("broadwell", 256), ("skylake", 256), ("alderlake", 256), ("neoverse", 128),
              ("apple", 128))

# Values that stand in for an unknown fact (those of a typical server CPU / an H100-class GPU).
_TYPICAL_CPU = dict(physical_cores=16, l1d_kb=32, l2_kb=1024, l3_mb=32, base_ghz=2.5)
_TYPICAL_GPU = dict(sms=108, clock_ghz=1.5, mem_bw_gbs=2000, smem_per_block_kb=100, smem_per_sm_kb=128, l2_mb=40,
                    fp32_tflops=20.0, memory_gb=40)

# One row per slot: (name, scale, lo, hi). "log": (log2 x - log2 lo) / (log2 hi - log2 lo); "lin": (x - lo) / (hi - lo).
_DESCRIPTOR_LAYOUT = (
    ("is_cpu", "flag", 0, 1),
    ("is_gpu", "flag", 0, 1),
    ("cpu_cores_used", "log", 1, 128),  # the target's num-cores
    ("cpu_physical_cores", "log", 1, 128),
    ("cpu_simd_bits", "log", 128, 512),
    ("cpu_l1d_kb", "log", 16, 64),
    ("cpu_l2_kb_per_core", "log", 256, 4096),
    ("cpu_l3_mb", "log", 4, 512),
    ("cpu_base_ghz", "lin", 1, 4),
    ("cpu_boost_ghz", "lin", 1, 6),
    ("cpu_mcpu_set", "flag", 0, 1),  # generic code (no mcpu) runs very differently
    ("cpu_peak_gflops_used", "log", 8, 32768),  # cores used x boost x FP32 lanes x 2 (FMA) x 2 (units)
    ("gpu_sms", "log", 16, 256),
    ("gpu_clock_ghz", "lin", 0.5, 2.5),
    ("gpu_mem_bw_gbs", "log", 100, 10000),
    ("gpu_smem_per_block_kb", "log", 16, 256),
    ("gpu_smem_per_sm_kb", "log", 16, 256),
    ("gpu_l2_mb", "log", 1, 128),
    ("gpu_fp32_tflops", "log", 1, 128),
    ("gpu_compute_capability", "lin", 5, 10),
    ("gpu_max_threads_per_block", "log", 256, 2048),
    ("gpu_memory_gb", "log", 4, 256),
    ("known_hardware", "flag", 0, 1),  # 1 = facts from the table, 0 = only what the target says
    ("reserved", "flag", 0, 1),
)
assert len(_DESCRIPTOR_LAYOUT) == DEVICE_DESCRIPTOR_DIM
DESCRIPTOR_NAMES = tuple(row[0] for row in _DESCRIPTOR_LAYOUT)
_SLOT = {name: i for i, name in enumerate(DESCRIPTOR_NAMES)}


def _scaled(name: str, x: float) -> float:
    _, scale, lo, hi = _DESCRIPTOR_LAYOUT[_SLOT[name]]
    if scale == "log":
        return (math.log2(max(float(x), 1e-9)) - math.log2(lo)) / (math.log2(hi) - math.log2(lo))
    if scale == "lin":
        return (float(x) - lo) / (hi - lo)
    return float(x)


def device_descriptor(target, device: "str | DeviceSpec | None" = None) -> np.ndarray:
    """A (DEVICE_DESCRIPTOR_DIM,) float32 vector for a ``tvm.target.Target``; ``device`` overrides the
    table lookup (a table name or a DeviceSpec)."""
    spec = device_for_target(target, device)
    v = np.zeros(DEVICE_DESCRIPTOR_DIM, dtype=np.float32)

    def put(name: str, x) -> None:
        v[_SLOT[name]] = _scaled(name, x)

    kind = target.kind.name
    is_gpu = (spec.kind == "gpu") if spec is not None else kind != "llvm"
    put("known_hardware", 1.0 if spec is not None else 0.0)
    if not is_gpu:
        put("is_cpu", 1.0)
        mcpu = str(_attr(target, "mcpu", "") or "") or (spec.mcpu if spec is not None else "") or ""
        s = spec or DeviceSpec("?", "cpu", "", {}, **_TYPICAL_CPU)
        cores_used = int(_attr(target, "num-cores", 0) or 0) or s.physical_cores or 1
        simd = s.simd_bits or next((bits for prefix, bits in _SIMD_BITS if mcpu.startswith(prefix)), 128)
        base = s.base_ghz or _TYPICAL_CPU["base_ghz"]
        boost = s.boost_ghz or base
        put("cpu_cores_used", cores_used)
        put("cpu_physical_cores", s.physical_cores or cores_used)
        put("cpu_simd_bits", simd)
        put("cpu_l1d_kb", s.l1d_kb or _TYPICAL_CPU["l1d_kb"])
        put("cpu_l2_kb_per_core", s.l2_kb or _TYPICAL_CPU["l2_kb"])
        put("cpu_l3_mb", s.l3_mb or _TYPICAL_CPU["l3_mb"])
        put("cpu_base_ghz", base)
        put("cpu_boost_ghz", boost)
        put("cpu_mcpu_set", 1.0 if str(_attr(target, "mcpu", "") or "") else 0.0)
        put("cpu_peak_gflops_used", cores_used * boost * (simd / 32) * 2 * 2)
    else:
        put("is_gpu", 1.0)
        s = spec or DeviceSpec("?", "gpu", "", {}, **_TYPICAL_GPU)
        smem_block = s.smem_per_block_kb
        if smem_block is None and _attr(target, "max_shared_memory_per_block") is not None:
            smem_block = int(_attr(target, "max_shared_memory_per_block")) / 1024
        l2 = s.l2_mb
        if l2 is None and _attr(target, "l2_cache_size_bytes") is not None:
            l2 = int(_attr(target, "l2_cache_size_bytes")) / 2 ** 20
        arch = _arch_number(s.arch) or _arch_number(_attr(target, "arch"))
        put("gpu_sms", s.sms or _TYPICAL_GPU["sms"])
        put("gpu_clock_ghz", s.clock_ghz or _TYPICAL_GPU["clock_ghz"])
        put("gpu_mem_bw_gbs", s.mem_bw_gbs or _TYPICAL_GPU["mem_bw_gbs"])
        put("gpu_smem_per_block_kb", smem_block or _TYPICAL_GPU["smem_per_block_kb"])
        put("gpu_smem_per_sm_kb", s.smem_per_sm_kb or _TYPICAL_GPU["smem_per_sm_kb"])
        put("gpu_l2_mb", l2 or _TYPICAL_GPU["l2_mb"])
        put("gpu_fp32_tflops", s.fp32_tflops or _TYPICAL_GPU["fp32_tflops"])
        put("gpu_compute_capability", (arch / 10.0) if arch else 8.0)
        put("gpu_max_threads_per_block", int(_attr(target, "max_threads_per_block", 1024) or 1024))
        put("gpu_memory_gb", s.memory_gb or _TYPICAL_GPU["memory_gb"])
    return v


def spec_descriptor(spec: "str | DeviceSpec") -> np.ndarray:
    """The descriptor of a table entry, through its own target."""
    spec = spec if isinstance(spec, DeviceSpec) else get_device(spec)
    return device_descriptor(device_target(spec), spec)
