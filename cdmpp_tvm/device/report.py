"""The known-device table and this machine's devices as JSON values and as text (``cdmpp-tvm devices``)."""
from __future__ import annotations

import json

from .descriptor import DESCRIPTOR_NAMES, DEVICE_DESCRIPTOR_DIM, DEVICE_SCHEMA_VERSION, spec_descriptor
from .detect import detect_local_cpu, detect_local_gpu, local_table_entry
from .table import KNOWN_DEVICES


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
