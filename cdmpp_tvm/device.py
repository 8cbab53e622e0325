"""Device descriptors: a fixed-length vector describing the hardware a latency was measured on.

It enters the model as a device embedding, so one model can serve several devices (CDMPP section 2.1).
Schema ``device-v2``: a descriptor is built from the TVM target *and* the hardware facts of the device
the target names, looked up in a table of known devices (``KNOWN_DEVICES``):

* CPU: physical cores, SIMD width, L1d / L2 (per core) / L3 (total) cache sizes, base and boost clock;
* GPU: SMs, boost clock, memory bandwidth, shared memory per block (opt-in maximum) and per SM, L2 size,
  FP32 TFLOPS, memory size, compute capability.

Target -> table entry (``device_for_target``): an explicit override (a table name or a ``DeviceSpec``),
else the target's ``tag`` (a dict target may carry any tag, e.g. ``"nvidia/nvidia-h200"``), else for llvm
its ``mcpu`` (preferring the entry with the target's ``num-cores``), for cuda its ``arch`` (``sm_90a`` ->
``sm_90``; ties broken by ``l2_cache_size_bytes``, then by table order: the H100 before the H200, which
has the same arch and L2, so an H200 needs its tag or the override). A target that matches no entry still
gets a descriptor, from what the target itself says (cores, SIMD class of its ``mcpu``, GPU limits) with
typical values for the rest and the "known hardware" slot 0.

Descriptors depend only on the target and the table, never on the machine that computes them, so a
feature cache written on one machine is valid on another. ``detect_local_cpu`` / ``detect_local_gpu``
read the facts of the machine we run on (``/proc/cpuinfo``, sysfs caches, ``torch.cuda``) for
``cdmpp-tvm devices`` and for adding this machine to the table (``register_device``).

Every value is log-scaled where it spans orders of magnitude and mapped linearly so that the range of
real devices lies in about [0, 1] (``_DESCRIPTOR_LAYOUT`` documents each slot).
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DEVICE_DESCRIPTOR_DIM = 24
DEVICE_SCHEMA_VERSION = "device-v2"

# SIMD width in bits implied by an LLVM CPU name (prefix match); unknown CPUs count as 128 (SSE2).
_SIMD_BITS = (("znver4", 512), ("znver5", 512), ("skylake-avx512", 512), ("cascadelake", 512), ("icelake", 512),
              ("sapphirerapids", 512), ("emeraldrapids", 512), ("graniterapids", 512), ("znver", 256),
              ("haswell", 256), ("broadwell", 256), ("skylake", 256), ("alderlake", 256), ("neoverse", 128),
              ("apple", 128))

# FP32 lanes per SM (CUDA cores) by compute capability major.minor, for estimating a detected GPU's TFLOPS.
_CUDA_CORES_PER_SM = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128,
                      (12, 0): 128}


@dataclass(frozen=True)
class DeviceSpec:
    """Hardware facts of one device. ``None`` = unknown (the descriptor then uses a typical value).

    ``target``: the TVM target (JSON dict) that compiles for this device, what ``cdmpp-tvm select
    --device NAME`` samples programs for. ``source``: where the numbers come from."""

    name: str
    kind: str  # "cpu" or "gpu"
    description: str
    target: dict
    source: str = ""
    # CPU
    mcpu: str | None = None
    physical_cores: int | None = None
    simd_bits: int | None = None
    l1d_kb: float | None = None
    l2_kb: float | None = None  # per core
    l3_mb: float | None = None  # total
    base_ghz: float | None = None
    boost_ghz: float | None = None
    # GPU
    arch: str | None = None  # "sm_90"
    sms: int | None = None
    clock_ghz: float | None = None  # boost
    mem_bw_gbs: float | None = None
    smem_per_block_kb: float | None = None  # opt-in maximum
    smem_per_sm_kb: float | None = None
    l2_mb: float | None = None
    fp32_tflops: float | None = None
    memory_gb: float | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)  # TVM target tags that mean this device

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tags"] = list(self.tags)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "DeviceSpec":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown device fields: {sorted(unknown)}")
        return cls(**{**d, "tags": tuple(d.get("tags", ()))})


def _cuda_target(arch: str, tag: str, l2_bytes: int | None) -> dict:
    t = {"kind": "cuda", "tag": tag, "arch": arch, "max_threads_per_block": 1024, "max_num_threads": 1024,
         "max_shared_memory_per_block": 49152, "thread_warp_size": 32, "registers_per_block": 65536}
    if l2_bytes:
        t["l2_cache_size_bytes"] = l2_bytes
    return t


_NVIDIA_SOURCE = "NVIDIA data sheets / CUDA programming guide (public figures)"

# Known devices. GPUs: NVIDIA's public figures (SXM parts; shared memory per block = the opt-in maximum).
# CPUs: the two 2-core AMD EPYC dev boxes this project measured on, and a stand-in for the GPU host.
KNOWN_DEVICES: dict[str, DeviceSpec] = {d.name: d for d in (
    DeviceSpec("nvidia-h100-sxm", "gpu", "NVIDIA H100 SXM5 80 GB", _cuda_target("sm_90a", "nvidia/nvidia-h100", 52428800),
               _NVIDIA_SOURCE, arch="sm_90", sms=132, clock_ghz=1.98, mem_bw_gbs=3350, smem_per_block_kb=227,
               smem_per_sm_kb=228, l2_mb=50, fp32_tflops=67.0, memory_gb=80, tags=("nvidia/nvidia-h100",)),
    DeviceSpec("nvidia-h200", "gpu", "NVIDIA H200 SXM 141 GB", _cuda_target("sm_90a", "nvidia/nvidia-h200", 52428800),
               _NVIDIA_SOURCE, arch="sm_90", sms=132, clock_ghz=1.98, mem_bw_gbs=4800, smem_per_block_kb=227,
               smem_per_sm_kb=228, l2_mb=50, fp32_tflops=67.0, memory_gb=141, tags=("nvidia/nvidia-h200",)),
    DeviceSpec("nvidia-a100", "gpu", "NVIDIA A100 SXM4 80 GB", _cuda_target("sm_80", "nvidia/nvidia-a100", 41943040),
               _NVIDIA_SOURCE, arch="sm_80", sms=108, clock_ghz=1.41, mem_bw_gbs=2039, smem_per_block_kb=163,
               smem_per_sm_kb=164, l2_mb=40, fp32_tflops=19.5, memory_gb=80, tags=("nvidia/nvidia-a100",)),
    DeviceSpec("nvidia-v100", "gpu", "NVIDIA V100 SXM2 16 GB", _cuda_target("sm_70", "nvidia/nvidia-v100", None),
               _NVIDIA_SOURCE, arch="sm_70", sms=80, clock_ghz=1.53, mem_bw_gbs=900, smem_per_block_kb=96,
               smem_per_sm_kb=96, l2_mb=6, fp32_tflops=15.7, memory_gb=16, tags=("nvidia/nvidia-v100",)),
    DeviceSpec("nvidia-t4", "gpu", "NVIDIA T4 16 GB", _cuda_target("sm_75", "nvidia/nvidia-t4", None),
               _NVIDIA_SOURCE, arch="sm_75", sms=40, clock_ghz=1.59, mem_bw_gbs=320, smem_per_block_kb=64,
               smem_per_sm_kb=64, l2_mb=4, fp32_tflops=8.1, memory_gb=16, tags=("nvidia/nvidia-t4",)),
    DeviceSpec("epyc-znver4-2core", "cpu", "2-core AMD EPYC dev box, Zen 4 (KVM guest, CPUID family 25 model 17)",
               {"kind": "llvm", "num-cores": 2, "mcpu": "znver4"},
               "read on the box on 2026-11-29: /proc/cpuinfo (2 cores, 1 thread each, avx512f, cpu MHz 2596.144) and "
               "/sys/devices/system/cpu/cpu0/cache (L1d 32K, L2 1024K, L3 32768K); the guest shows no boost clock",
               mcpu="znver4", physical_cores=2, simd_bits=512, l1d_kb=32, l2_kb=1024, l3_mb=32, base_ghz=2.596),
    DeviceSpec("epyc-znver1-2core", "cpu", "2-core AMD EPYC dev box that measured the bootstrap set (llvm cpu znver1)",
               {"kind": "llvm", "num-cores": 2, "mcpu": "znver1"},
               "assumed: public figures of Zen 1 EPYC 7001 (L1d 32 KB, L2 512 KB/core, L3 8 MB per CCX, "
               "2.2 / 3.0 GHz); the box's own cache sizes and clocks were not recorded",
               mcpu="znver1", physical_cores=2, simd_bits=256, l1d_kb=32, l2_kb=512, l3_mb=8, base_ghz=2.2,
               boost_ghz=3.0),
    DeviceSpec("server-16core", "cpu", "16-core server CPU of the GPU host (model unknown)",
               {"kind": "llvm", "num-cores": 16},
               "assumed typical values: AVX2, L1d 32 KB, L2 1 MB/core, L3 32 MB, 2.5 / 3.5 GHz; the model is unknown, "
               "so this entry is matched only by name (override)",
               mcpu=None, physical_cores=16, simd_bits=256, l1d_kb=32, l2_kb=1024, l3_mb=32, base_ghz=2.5,
               boost_ghz=3.5),
)}

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


# ------------------------------------------------------------------------------------------------ registry

def register_device(spec: DeviceSpec, replace_existing: bool = False) -> None:
    """Add a device to the table (e.g. one made by ``detect_local_cpu`` with an ``mcpu``)."""
    if spec.kind not in ("cpu", "gpu"):
        raise ValueError(f"device kind must be 'cpu' or 'gpu', got {spec.kind!r}")
    if spec.name in KNOWN_DEVICES and not replace_existing:
        raise ValueError(f"device {spec.name!r} is already in the table (pass replace_existing=True)")
    KNOWN_DEVICES[spec.name] = spec


def get_device(name: str) -> DeviceSpec:
    if name not in KNOWN_DEVICES:
        raise KeyError(f"unknown device {name!r}; known devices: {', '.join(KNOWN_DEVICES)}")
    return KNOWN_DEVICES[name]


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
    import tvm

    spec = name_or_spec if isinstance(name_or_spec, DeviceSpec) else get_device(name_or_spec)
    return tvm.target.Target(dict(spec.target))


# ----------------------------------------------------------------------------------------------- descriptor

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


def device_name(target) -> str:
    """A short human-readable name for a target: 'llvm/znver1' or 'cuda/sm_90a'."""
    kind = target.kind.name
    attrs = target.attrs
    detail = str(attrs["mcpu"]) if "mcpu" in attrs else (str(attrs["arch"]) if "arch" in attrs else "generic")
    return f"{kind}/{detail}"


# ------------------------------------------------------------------------------------------ local detection

def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _size_kb(text: str) -> float | None:
    """'32K' -> 32, '1024K' -> 1024, '32M' -> 32768 (sysfs cache sizes)."""
    m = re.match(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"": 1 / 1024, "K": 1, "M": 1024, "G": 1024 ** 2}[m.group(2)]


def read_cpu_facts(cpuinfo: str | None = None, cache_dir: str | Path = "/sys/devices/system/cpu/cpu0/cache",
                   cpufreq_dir: str | Path = "/sys/devices/system/cpu/cpu0/cpufreq") -> dict:
    """This machine's CPU facts: model, physical cores, SIMD bits (from the flags), L1d / L2 / L3 sizes
    (sysfs), base / max clock (cpufreq, else the cpuinfo MHz). Missing facts are None."""
    text = cpuinfo if cpuinfo is not None else (_read("/proc/cpuinfo") or "")
    blocks = [b for b in text.split("\n\n") if b.strip()]
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    for b in blocks:
        fields = {}
        for line in b.splitlines():
            if ":" in line:
                k, val = line.split(":", 1)
                fields[k.strip()] = val.strip()
        first = first or fields
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    flags = set(first.get("flags", "").split())
    simd = 512 if "avx512f" in flags else 256 if "avx2" in flags or "avx" in flags else 128 if flags else None
    physical = len(cores) or None
    if physical is None:
        try:
            import psutil

            physical = psutil.cpu_count(logical=False)
        except ImportError:
            physical = os.cpu_count()
    caches: dict[str, float] = {}
    for idx in sorted(Path(cache_dir).glob("index*")) if Path(cache_dir).exists() else []:
        level, ctype, size = (_read(idx / n) for n in ("level", "type", "size"))
        if not (level and ctype and size):
            continue
        key = {("1", "Data"): "l1d_kb", ("2", "Unified"): "l2_kb", ("3", "Unified"): "l3_kb"}.get(
            (level.strip(), ctype.strip()))
        if key:
            caches[key] = _size_kb(size.strip())
    base = max_f = None
    if Path(cpufreq_dir).exists():
        for name, dest in (("base_frequency", "base"), ("cpuinfo_max_freq", "max")):
            t = _read(Path(cpufreq_dir) / name)
            if t and t.strip().isdigit():
                ghz = int(t) / 1e6  # kHz
                base, max_f = (ghz, max_f) if dest == "base" else (base, ghz)
    mhz = first.get("cpu MHz")
    if base is None and mhz:
        try:
            base = float(mhz) / 1000
        except ValueError:
            pass
    return {"model": first.get("model name"), "vendor": first.get("vendor_id"), "family": first.get("cpu family"),
            "cpu_model": first.get("model"), "physical_cores": physical, "logical_cpus": len(blocks) or os.cpu_count(),
            "simd_bits": simd, "l1d_kb": caches.get("l1d_kb"), "l2_kb": caches.get("l2_kb"),
            "l3_mb": caches["l3_kb"] / 1024 if caches.get("l3_kb") else None, "base_ghz": base, "boost_ghz": max_f}


def _llvm_system_cpu() -> str | None:
    try:
        import tvm

        return str(tvm.target.codegen.llvm_get_system_cpu()) or None
    except Exception:  # noqa: BLE001 - detection never fails on a missing TVM
        return None


def detect_local_cpu(name: str = "local-cpu") -> DeviceSpec:
    """A DeviceSpec of this machine's CPU (``read_cpu_facts`` + LLVM's name for it as ``mcpu``)."""
    f = read_cpu_facts()
    mcpu = _llvm_system_cpu()
    target = {"kind": "llvm", "num-cores": int(f["physical_cores"] or 1)}
    if mcpu:
        target["mcpu"] = mcpu
    return DeviceSpec(name, "cpu", f"{f['model'] or 'unknown CPU'} ({f['physical_cores']} cores)", target,
                      "detected: /proc/cpuinfo, /sys/devices/system/cpu/cpu0/{cache,cpufreq}", mcpu=mcpu,
                      physical_cores=f["physical_cores"], simd_bits=f["simd_bits"], l1d_kb=f["l1d_kb"],
                      l2_kb=f["l2_kb"], l3_mb=f["l3_mb"], base_ghz=f["base_ghz"], boost_ghz=f["boost_ghz"])


def detect_local_gpu(index: int = 0, name: str = "local-gpu") -> DeviceSpec | None:
    """A DeviceSpec of CUDA GPU ``index`` from ``torch.cuda.get_device_properties``, or None without one.
    Bandwidth from the memory clock and bus width; FP32 TFLOPS from SMs x FP32 lanes x 2 x clock; a GPU
    whose name matches a table entry takes the entry's published figures for what torch does not report."""
    try:
        import torch

        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return None
        p = torch.cuda.get_device_properties(index)
    except Exception:  # noqa: BLE001
        return None
    cc = (int(p.major), int(p.minor))
    clock = getattr(p, "clock_rate", 0) / 1e6 or None  # kHz -> GHz
    mem_clock, bus = getattr(p, "memory_clock_rate", 0), getattr(p, "memory_bus_width", 0)
    bw = 2 * mem_clock * 1e3 * bus / 8 / 1e9 if mem_clock and bus else None
    lanes = _CUDA_CORES_PER_SM.get(cc, 128 if cc[0] >= 9 else 64)
    tflops = p.multi_processor_count * lanes * 2 * clock / 1e3 if clock else None
    smem_block = getattr(p, "shared_memory_per_block_optin", 0) or getattr(p, "shared_memory_per_block", 0)
    arch = f"sm_{cc[0]}{cc[1]}"
    table = next((s for s in KNOWN_DEVICES.values() if s.kind == "gpu" and
                  _table_gpu_name_matches(s, str(p.name))), None)
    spec = DeviceSpec(
        name, "gpu", str(p.name), _cuda_target(arch + ("a" if cc[0] >= 9 else ""), table.tags[0] if table else "",
                                               int(getattr(p, "L2_cache_size", 0)) or None),
        "detected: torch.cuda.get_device_properties" + (f" + table entry {table.name}" if table else ""),
        arch=arch, sms=int(p.multi_processor_count), clock_ghz=clock or (table.clock_ghz if table else None),
        mem_bw_gbs=(table.mem_bw_gbs if table else None) or bw,
        smem_per_block_kb=smem_block / 1024 if smem_block else None,
        smem_per_sm_kb=getattr(p, "shared_memory_per_multiprocessor", 0) / 1024 or None,
        l2_mb=getattr(p, "L2_cache_size", 0) / 2 ** 20 or None,
        fp32_tflops=(table.fp32_tflops if table else None) or tflops, memory_gb=p.total_memory / 2 ** 30,
        tags=table.tags if table else ())
    return spec


def _table_gpu_name_matches(spec: DeviceSpec, gpu_name: str) -> bool:
    """'NVIDIA H100 80GB HBM3' matches nvidia-h100-sxm, 'NVIDIA H200' nvidia-h200, 'Tesla T4' nvidia-t4."""
    key = spec.name.split("-")[1]  # h100, h200, a100, v100, t4
    return re.search(rf"\b{re.escape(key)}\b", gpu_name.lower()) is not None


def local_table_entry() -> DeviceSpec | None:
    """The table entry this machine's CPU target (llvm, its mcpu, its physical cores) maps to, if any."""
    local = detect_local_cpu()
    if not local.mcpu:
        return None
    import tvm

    return device_for_target(tvm.target.Target(dict(local.target)))


def describe_devices(include_local: bool = True) -> dict:
    """The table and the detected local devices, as plain JSON values (``cdmpp-tvm devices --json``)."""
    out = {"schema": DEVICE_SCHEMA_VERSION, "descriptor_dim": DEVICE_DESCRIPTOR_DIM,
           "descriptor_slots": list(DESCRIPTOR_NAMES),
           "table": {n: {**s.to_dict(), "descriptor": [round(float(x), 4) for x in spec_descriptor(s)]}
                     for n, s in KNOWN_DEVICES.items()}}
    if include_local:
        cpu = detect_local_cpu()
        gpu = detect_local_gpu()
        entry = local_table_entry()
        out["local"] = {"cpu": cpu.to_dict(), "gpu": gpu.to_dict() if gpu else None,
                        "cpu_table_entry": entry.name if entry else None}
    return json.loads(json.dumps(out))


def format_devices(info: dict) -> str:
    """The text ``cdmpp-tvm devices`` prints."""
    lines = [f"Known devices (descriptor schema {info['schema']}, {info['descriptor_dim']} values):"]
    for name, s in info["table"].items():
        if s["kind"] == "cpu":
            facts = (f"{s['physical_cores']} cores, SIMD {s['simd_bits']} bit, L1d {_n(s['l1d_kb'])} KB, "
                     f"L2 {_n(s['l2_kb'])} KB/core, L3 {_n(s['l3_mb'])} MB, {_n(s['base_ghz'])}/{_n(s['boost_ghz'])} GHz")
        else:
            facts = (f"{s['arch']}, {s['sms']} SMs, {_n(s['clock_ghz'])} GHz, {_n(s['mem_bw_gbs'])} GB/s, "
                     f"smem {_n(s['smem_per_block_kb'])} KB/block {_n(s['smem_per_sm_kb'])} KB/SM, L2 {_n(s['l2_mb'])} MB, "
                     f"{_n(s['fp32_tflops'])} FP32 TFLOPS, {_n(s['memory_gb'])} GB")
        lines.append(f"  {name:20s} {s['kind']}  {s['description']}")
        lines.append(f"  {'':20s}      {facts}")
        lines.append(f"  {'':20s}      target {json.dumps(s['target'])}")
    local = info.get("local")
    if local:
        c = local["cpu"]
        lines.append("Detected on this machine:")
        lines.append(f"  CPU: {c['description']}, mcpu {c['mcpu']}, SIMD {c['simd_bits']} bit, L1d {_n(c['l1d_kb'])} KB, "
                     f"L2 {_n(c['l2_kb'])} KB/core, L3 {_n(c['l3_mb'])} MB, base {_n(c['base_ghz'])} GHz, "
                     f"max {_n(c['boost_ghz'])} GHz -> table entry: {local['cpu_table_entry'] or 'none'}")
        g = local["gpu"]
        lines.append("  GPU: none" if g is None else
                     f"  GPU: {g['description']}, {g['arch']}, {g['sms']} SMs, {_n(g['clock_ghz'])} GHz, "
                     f"{_n(g['mem_bw_gbs'])} GB/s, L2 {_n(g['l2_mb'])} MB, {_n(g['memory_gb'])} GB")
    return "\n".join(lines)


def _n(x) -> str:
    return "?" if x is None else f"{x:g}"


__all__ = ["DEVICE_DESCRIPTOR_DIM", "DEVICE_SCHEMA_VERSION", "DESCRIPTOR_NAMES", "DeviceSpec", "KNOWN_DEVICES",
           "describe_devices", "detect_local_cpu", "detect_local_gpu", "device_descriptor", "device_for_target",
           "device_name", "device_target", "format_devices", "get_device", "local_table_entry", "read_cpu_facts",
           "register_device", "spec_descriptor"]
