"""The table of known devices: ``DeviceSpec`` (the hardware facts of one device) and ``KNOWN_DEVICES``.

GPUs carry NVIDIA's public figures; CPUs the dev boxes this project measured on. Each entry also names the
TVM target that compiles for it (``DeviceSpec.target``)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


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
# CPUs: the 2-core AMD EPYC dev boxes this project measured on, and a stand-in for the GPU host.
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
    DeviceSpec("epyc-znver5-2core", "cpu", "2-core AMD EPYC dev box, Zen 5 (KVM guest, CPUID family 26 model 2)",
               {"kind": "llvm", "num-cores": 2, "mcpu": "znver5"},
               "read on the box on 2026-12-02: lscpu / /proc/cpuinfo (2 cores, 1 thread each, avx512f, cpu MHz "
               "2596.09, L1d 48K, L2 1024K, L3 32768K); the guest shows no boost clock",
               mcpu="znver5", physical_cores=2, simd_bits=512, l1d_kb=48, l2_kb=1024, l3_mb=32, base_ghz=2.596),
    DeviceSpec("epyc-znver3-2core", "cpu", "2-core AMD EPYC dev box, Zen 3 (KVM guest, CPUID family 25 model 1)",
               {"kind": "llvm", "num-cores": 2, "mcpu": "znver3"},
               "read on the box on 2026-12-06: lscpu / /proc/cpuinfo (2 cores, 1 thread each, AVX2, no avx512f, cpu MHz "
               "2445.42, L1d 32K, L2 512K, L3 32768K per instance); the guest shows no boost clock",
               mcpu="znver3", physical_cores=2, simd_bits=256, l1d_kb=32, l2_kb=512, l3_mb=32, base_ghz=2.445),
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


def get_device(name: str) -> DeviceSpec:
    if name not in KNOWN_DEVICES:
        raise KeyError(f"unknown device {name!r}; known devices: {', '.join(KNOWN_DEVICES)}")
    return KNOWN_DEVICES[name]
