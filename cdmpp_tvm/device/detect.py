"""Detection of the machine we run on: its CPU (``/proc/cpuinfo``, sysfs caches and clocks, LLVM's name for
it) and its CUDA GPU (``torch.cuda``), as ``DeviceSpec``s, and the table entry its CPU maps to.

Used by ``cdmpp-tvm devices`` and by ``data.collect`` (the CPU model a run was measured on); descriptors
never depend on it (see ``descriptor``)."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

import psutil
import tvm

from .lookup import device_for_target
from .table import KNOWN_DEVICES, DeviceSpec, _cuda_target

# FP32 lanes per SM (CUDA cores) by compute capability major.minor, for estimating a detected GPU's TFLOPS.
_CUDA_CORES_PER_SM = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 9): 128, (9, 0): 128, (10, 0): 128,
                      (12, 0): 128}


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


def _cpuinfo_processors(cpuinfo: str | None = None) -> list[dict[str, str]]:
    """The processor blocks of ``/proc/cpuinfo`` (or of the text ``cpuinfo``), each as a dict of its fields."""
    text = cpuinfo if cpuinfo is not None else (_read("/proc/cpuinfo") or "")
    blocks = [b for b in text.split("\n\n") if b.strip()]
    processors = []
    for b in blocks:
        fields = {}
        for line in b.splitlines():
            if ":" in line:
                k, val = line.split(":", 1)
                fields[k.strip()] = val.strip()
        processors.append(fields)
    return processors


def cpu_model_name(cpuinfo: str | None = None) -> str:
    """This machine's CPU model: the first ``model name`` in ``/proc/cpuinfo``, else ``platform.processor()``,
    else 'unknown'."""
    for fields in _cpuinfo_processors(cpuinfo):
        if "model name" in fields:
            return fields["model name"]
    return platform.processor() or "unknown"


def read_cpu_facts(cpuinfo: str | None = None, cache_dir: str | Path = "/sys/devices/system/cpu/cpu0/cache",
                   cpufreq_dir: str | Path = "/sys/devices/system/cpu/cpu0/cpufreq") -> dict:
    """This machine's CPU facts: model, physical cores, SIMD bits (from the flags), L1d / L2 / L3 sizes
    (sysfs), base / max clock (cpufreq, else the cpuinfo MHz). Missing facts are None."""
    blocks = _cpuinfo_processors(cpuinfo)
    first: dict[str, str] = {}
    cores: set[tuple[str, str]] = set()
    for fields in blocks:
        first = first or fields
        if "core id" in fields:
            cores.add((fields.get("physical id", "0"), fields["core id"]))
    flags = set(first.get("flags", "").split())
    simd = 512 if "avx512f" in flags else 256 if "avx2" in flags or "avx" in flags else 128 if flags else None
    physical = len(cores) or None
    if physical is None:
        physical = psutil.cpu_count(logical=False)
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
        return str(tvm.target.codegen.llvm_get_system_cpu()) or None
    except Exception:  # noqa: BLE001 - detection never fails on a TVM built without LLVM
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
        # Lazy: torch is heavy and only GPU detection needs it, so importing the device package does not
        # import torch.
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
    return device_for_target(tvm.target.Target(dict(local.target)))
