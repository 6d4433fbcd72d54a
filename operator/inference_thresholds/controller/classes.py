"""Hardware classes: nodes whose inference-relevant hardware is identical.

A class is named from its hardware plus a short content hash, so the name is stable
across restarts and node order, readable in `kubectl get`, and distinct for profiles
that differ only in details (memory size, ISA).
"""

from __future__ import annotations

import hashlib
import json

from ..api import DeviceInfo, HardwareProfile
from ..text import slug


def class_key(profile: HardwareProfile) -> str:
    """Content hash of the hardware (the source is not hardware, so it is left out)."""
    wire = profile.wire()
    wire.pop("source", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _slices(dev: DeviceInfo) -> str:
    """' (MIG 28x 1g.10gb, time-slicing x4)': what pods get when it is not whole GPUs."""
    kinds = []
    for part in dev.partitions or []:
        what = f"MIG {part.count}x {part.mig_profile}" if part.mig_profile else "whole"
        if part.sharing != "none":
            what += f" {part.sharing} x{part.replicas or '?'}"
        kinds.append(what)
    if dev.partitions == []:
        kinds.append("MIG, no instance")
    return f" ({', '.join(kinds)})" if kinds else ""


def _devices_summary(devices: list[DeviceInfo]) -> str:
    parts = []
    for dev in devices:
        mem = f" {dev.memory_mib / 1024:.0f}GiB" if dev.memory_mib else ""
        parts.append(f"{dev.count}x {dev.product}{mem}{_slices(dev)}")
    return ", ".join(parts)


def _cpu_summary(profile: HardwareProfile) -> str:
    cpu = profile.cpu
    cores = cpu.usable_cores or cpu.physical_cores or cpu.logical_cores
    name = cpu.model or " ".join(p for p in (cpu.vendor, cpu.architecture) if p) or "CPU"
    core_text = f"{cores:g} cores" if cores else "cores unknown"
    mem = profile.memory.total_mib
    mem_text = f", {mem / 1024:.0f}GiB RAM" if mem else ""
    return f"{name}, {core_text}{mem_text}"


def summary(profile: HardwareProfile) -> str:
    """One line a person recognises, e.g. '8x NVIDIA H100 80GB 80GiB; AMD EPYC 9654, 192 cores'."""
    devices = _devices_summary(profile.gpus + profile.accelerators)
    cpu = _cpu_summary(profile)
    return f"{devices}; {cpu}" if devices else cpu


def class_name(profile: HardwareProfile) -> str:
    """Stable DNS-label-safe name: '<kind>-<product>-<count or cores>-<hash6>'."""
    key = class_key(profile)
    devices = profile.gpus or profile.accelerators
    if devices:
        dev = devices[0]
        base = f"{'gpu' if profile.gpus else 'acc'}-{slug(dev.product)}-x{dev.count}"
    else:
        cpu = profile.cpu
        cores = cpu.usable_cores or cpu.physical_cores or cpu.logical_cores
        what = slug(cpu.model or cpu.vendor or cpu.architecture or "unknown")
        base = f"cpu-{what}" + (f"-{cores:g}c".replace(".", "p") if cores else "")
    return f"{base[:55].rstrip('-')}-{key[:6]}"
