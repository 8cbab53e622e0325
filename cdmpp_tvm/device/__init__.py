"""Devices: the hardware a latency was measured on, and the descriptor vector that tells the model about it.

* ``table``: ``DeviceSpec`` and ``KNOWN_DEVICES``, the hardware facts of known CPUs and GPUs;
* ``lookup``: which table entry a TVM target means (``device_for_target``), an entry's target
  (``device_target``), a target's short name (``device_name``);
* ``descriptor``: the fixed-length descriptor (schema ``device-v2``) built from a target and its entry,
  the model's device embedding input;
* ``detect``: this machine's CPU and GPU (``/proc/cpuinfo``, sysfs, ``torch.cuda``);
* ``report``: the table and this machine's devices as ``cdmpp-tvm devices`` prints them.

Lowest first: ``table`` <- ``lookup`` <- ``descriptor``, ``detect`` <- ``report``.
"""
from .descriptor import (
    DESCRIPTOR_NAMES,
    DEVICE_DESCRIPTOR_DIM,
    DEVICE_SCHEMA_VERSION,
    device_descriptor,
    spec_descriptor,
)
from .detect import cpu_model_name, detect_local_cpu, detect_local_gpu, local_table_entry, read_cpu_facts
from .lookup import device_for_target, device_name, device_target
from .report import describe_devices, format_devices
from .table import KNOWN_DEVICES, DeviceSpec, get_device

__all__ = ["DEVICE_DESCRIPTOR_DIM", "DEVICE_SCHEMA_VERSION", "DESCRIPTOR_NAMES", "DeviceSpec", "KNOWN_DEVICES",
           "cpu_model_name", "describe_devices", "detect_local_cpu", "detect_local_gpu", "device_descriptor",
           "device_for_target", "device_name", "device_target", "format_devices", "get_device",
           "local_table_entry", "read_cpu_facts", "spec_descriptor"]
