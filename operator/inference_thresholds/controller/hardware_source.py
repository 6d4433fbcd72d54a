"""Node object -> HardwareProfile, from the best source the node offers.

Order: our agent's full JSON profile annotation; NVIDIA GPU Feature Discovery labels
(GPUs) plus NFD labels (CPU ISA, vendor); finally ``status.capacity``/``nodeInfo``.
The chosen source is recorded in the profile so the decision log can say it.

A Node is written by its kubelet, its agent and anyone allowed to patch Nodes, so every
value is bounded here (``bounds.py`` for the JSON, the profile model's limits for the
numbers): a refused value is left out, said in ``rejected`` (the operator reports it on
the Node) and the node is still served from what remains. Nothing a Node holds makes
this raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import CpuInfo, DeviceInfo, HardwareProfile, MemoryInfo
from ..api.errors import field_errors
from ..api.hardware import CORES_MAX, DEVICE_MEMORY_MAX_MIB, DEVICES_MAX, MEMORY_MAX_MIB
from ..api.node_contract import PROFILE_ANNOTATION, parse_quantity
from ..bounds import InputRejected, clip, load_json

GFD_PREFIX = "nvidia.com/"
NFD_CPUID_PREFIX = "feature.node.kubernetes.io/cpu-cpuid."
NFD_VENDOR_LABEL = "feature.node.kubernetes.io/cpu-model.vendor_id"

# NFD cpuid flag -> the ISA names the engine uses.
_NFD_ISA = {
    "AVX2": "avx2",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VNNI": "avx512_vnni",
    "AVXVNNI": "avx_vnni",
    "AVX512BF16": "avx512_bf16",
    "AMXINT8": "amx_int8",
    "AMXBF16": "amx_bf16",
    "FMA3": "fma",
    "ASIMD": "neon",
    "ASIMDDP": "asimddp",
    "SVE": "sve",
    "I8MM": "i8mm",
}
_NFD_VENDOR = {"Intel": "intel", "AMD": "amd", "ARM": "arm", "Apple": "apple"}
_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# The agent's profile is ~2 KB and nests 4 levels (profile, gpus, list, device); an object's
# annotations may hold 256 KiB in all.
PROFILE_MAX_BYTES = 64 * 1024
PROFILE_MAX_DEPTH = 8
MIN_CORES = 0.001  # 1m, the smallest CPU quantity Kubernetes schedules


@dataclass(frozen=True)
class NodeHardware:
    profile: HardwareProfile
    source: str
    notes: tuple[str, ...] = ()
    # Values the node offered that were refused (invalid, oversized, out of bounds); each
    # is also among ``notes``. The operator reports them on the Node.
    rejected: tuple[str, ...] = ()


class _Reading:
    """Notes while one Node is read; ``reject`` marks a refused input."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.rejected: list[str] = []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def reject(self, text: str) -> None:
        self.notes.append(text)
        self.rejected.append(text)

    def hardware(self, profile: HardwareProfile, source: str) -> NodeHardware:
        return NodeHardware(profile, source, tuple(self.notes), tuple(self.rejected))


def _int_label(labels: Mapping[str, str], key: str, high: int, reading: _Reading) -> int | None:
    raw = labels.get(key)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if 1 <= value <= high:
        return value
    reading.reject(f"ignored label {key}={clip(raw, 40)!r}: not a whole number in 1..{high}")
    return None


def _quantity(
    resources: Mapping[str, Any],
    where: str,
    key: str,
    bounds: tuple[float, float, str],
    reading: _Reading,
) -> float | None:
    """One resource quantity within ``bounds`` (low, high, as text), else None (said in
    ``reading``)."""
    if key not in resources:
        return None
    low, high, range_text = bounds
    raw = str(resources[key])
    try:
        value = float(parse_quantity(raw))
    except ValueError:
        value = math.nan
    if low <= value <= high:
        return value
    reading.reject(f"ignored {where}.{key} {clip(raw, 40)!r}: not a quantity in {range_text}")
    return None


def _from_capacity(node: Mapping[str, Any], reading: _Reading) -> tuple[CpuInfo, MemoryInfo]:
    status = node.get("status") or {}
    # allocatable is what pods can actually get; capacity when it is missing.
    where = "status.allocatable" if status.get("allocatable") else "status.capacity"
    resources = status.get("allocatable") or status.get("capacity") or {}
    info = status.get("nodeInfo") or {}
    if not isinstance(resources, Mapping) or not isinstance(info, Mapping):
        reading.reject(f"ignored {where}: not an object")
        resources, info = {}, {}
    cores = _quantity(
        resources, where, "cpu", (MIN_CORES, CORES_MAX, f"1m..{CORES_MAX} cores"), reading
    )
    memory = _quantity(
        resources, where, "memory", (2**20, MEMORY_MAX_MIB * 2**20, "1Mi..128Ti"), reading
    )
    arch = info.get("architecture")
    if not isinstance(arch, str) or len(arch) > 32:
        arch = None
    cpu = CpuInfo(
        architecture=_ARCH.get(arch, arch) if arch else None,
        logical_cores=int(cores) if cores and cores >= 1 else None,
        usable_cores=cores,
    )
    return cpu, MemoryInfo(total_mib=int(memory / 2**20) if memory else None)


def _nfd_cpu(labels: Mapping[str, str], cpu: CpuInfo) -> tuple[CpuInfo, bool]:
    isa = sorted(
        {
            name
            for flag, name in _NFD_ISA.items()
            if labels.get(NFD_CPUID_PREFIX + flag, "").lower() == "true"
        }
    )
    vendor = _NFD_VENDOR.get(labels.get(NFD_VENDOR_LABEL, ""))
    if not isa and vendor is None:
        return cpu, False
    return cpu.model_copy(update={"isa": isa, "vendor": vendor or cpu.vendor}), True


def _gfd_gpus(labels: Mapping[str, str], reading: _Reading) -> list[DeviceInfo]:
    product = labels.get(GFD_PREFIX + "gpu.product")
    if not product:
        return []
    major = labels.get(GFD_PREFIX + "gpu.compute.major")
    minor = labels.get(GFD_PREFIX + "gpu.compute.minor")
    capability = f"{major}.{minor}" if major and minor else None
    if capability and not re.fullmatch(r"\d+\.\d+", capability):
        reading.reject(f"ignored GFD compute capability {clip(capability, 40)!r}")
        capability = None
    return [
        DeviceInfo(
            vendor="nvidia",
            # GFD replaces spaces with '-'; give people the readable name back.
            product=product.replace("-", " "),
            count=_int_label(labels, GFD_PREFIX + "gpu.count", DEVICES_MAX, reading) or 1,
            memory_mib=_int_label(
                labels, GFD_PREFIX + "gpu.memory", DEVICE_MEMORY_MAX_MIB, reading
            ),
            compute_capability=capability,
        )
    ]


def _annotation_note(why: str) -> str:
    # Bounded: the annotation is the node's to write, and the note lands in status.
    return (
        f"annotation {PROFILE_ANNOTATION} is not a valid profile ({clip(why, 300)}); "
        "fell back to labels"
    )


def _agent_profile(raw: Any, reading: _Reading) -> HardwareProfile | None:
    """The agent's profile annotation, or None (said in ``reading``) when it is not one."""
    if not isinstance(raw, str):
        reading.reject(_annotation_note("not a string"))
        return None
    try:
        data = load_json(
            raw,
            max_bytes=PROFILE_MAX_BYTES,
            max_depth=PROFILE_MAX_DEPTH,
            what="the annotation",
        )
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        loc, msg = next(field_errors(exc))
        more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
        reading.reject(_annotation_note(f"{loc or 'profile'}: {msg}{more}"))
    except InputRejected as exc:
        reading.reject(_annotation_note(str(exc)))
    return None


def node_hardware(node: Mapping[str, Any]) -> NodeHardware:
    """The hardware profile of a Node object (a plain dict as the API returns it)."""
    reading = _Reading()
    try:
        return _read(node, reading)
    except Exception as exc:  # a last resort: one Node never stops the operator
        reading.reject(f"could not read the node's hardware: {type(exc).__name__}: {exc}"[:400])
        return reading.hardware(HardwareProfile(source="capacity"), "capacity")


def _read(node: Mapping[str, Any], reading: _Reading) -> NodeHardware:
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}

    if PROFILE_ANNOTATION in annotations:
        profile = _agent_profile(annotations[PROFILE_ANNOTATION], reading)
        if profile is not None:
            return reading.hardware(profile.model_copy(update={"source": "agent"}), "agent")

    cpu, memory = _from_capacity(node, reading)
    cpu, used_nfd = _nfd_cpu(labels, cpu)
    gpus = _gfd_gpus(labels, reading)
    if gpus:
        source = "gfd"
    elif used_nfd:
        source = "nfd"
    else:
        source = "capacity"
        capacity_gpus = ((node.get("status") or {}).get("capacity") or {}).get("nvidia.com/gpu")
        if capacity_gpus:
            reading.note(
                f"node has {clip(str(capacity_gpus), 20)} nvidia.com/gpu but no GFD labels or "
                "agent profile: GPU model unknown, thresholds are for the CPU"
            )
    profile = HardwareProfile(cpu=cpu, memory=memory, gpus=gpus, source=source)
    return reading.hardware(profile, source)
