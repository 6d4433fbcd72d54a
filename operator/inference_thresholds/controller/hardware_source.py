"""Node object -> HardwareProfile, from the best source the node offers.

Order: our agent's full JSON profile annotation; NVIDIA GPU Feature Discovery labels
(GPUs) plus NFD labels (CPU ISA, vendor); finally ``status.capacity``/``nodeInfo``.
The chosen source is recorded in the profile so the decision log can say it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import CpuInfo, DeviceInfo, HardwareProfile, MemoryInfo
from ..api.errors import field_errors
from ..api.node_contract import PROFILE_ANNOTATION, parse_quantity

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


@dataclass(frozen=True)
class NodeHardware:
    profile: HardwareProfile
    source: str
    notes: tuple[str, ...] = ()


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    try:
        value = int(labels[key])
    except (KeyError, ValueError):
        return None
    return value if value >= 1 else None


def _from_capacity(node: Mapping[str, Any], notes: list[str]) -> tuple[CpuInfo, MemoryInfo]:
    status = node.get("status") or {}
    # allocatable is what pods can actually get; capacity when it is missing.
    resources = status.get("allocatable") or status.get("capacity") or {}
    info = status.get("nodeInfo") or {}
    cores: float | None = None
    memory_mib: int | None = None
    try:
        if "cpu" in resources:
            cores = float(parse_quantity(str(resources["cpu"]))) or None
        if "memory" in resources:
            memory_mib = int(parse_quantity(str(resources["memory"])) / 2**20) or None
    except ValueError as exc:
        notes.append(f"ignored node capacity: {exc}")
    arch = info.get("architecture")
    cpu = CpuInfo(
        architecture=_ARCH.get(arch, arch) if arch else None,
        logical_cores=int(cores) if cores and cores >= 1 else None,
        usable_cores=cores,
    )
    return cpu, MemoryInfo(total_mib=memory_mib)


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


def _gfd_gpus(labels: Mapping[str, str], notes: list[str]) -> list[DeviceInfo]:
    product = labels.get(GFD_PREFIX + "gpu.product")
    if not product:
        return []
    major = labels.get(GFD_PREFIX + "gpu.compute.major")
    minor = labels.get(GFD_PREFIX + "gpu.compute.minor")
    capability = f"{major}.{minor}" if major and minor else None
    if capability and not re.fullmatch(r"\d+\.\d+", capability):
        notes.append(f"ignored GFD compute capability {capability!r}")
        capability = None
    return [
        DeviceInfo(
            vendor="nvidia",
            # GFD replaces spaces with '-'; give people the readable name back.
            product=product.replace("-", " "),
            count=_int_label(labels, GFD_PREFIX + "gpu.count") or 1,
            memory_mib=_int_label(labels, GFD_PREFIX + "gpu.memory"),
            compute_capability=capability,
        )
    ]


def _annotation_note(why: str) -> str:
    # Bounded: the annotation is the node's to write, and the note lands in status.
    return (
        f"annotation {PROFILE_ANNOTATION} is not a valid profile ({why[:300]}); fell back to labels"
    )


def node_hardware(node: Mapping[str, Any]) -> NodeHardware:
    """The hardware profile of a Node object (a plain dict as the API returns it)."""
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    notes: list[str] = []

    raw = annotations.get(PROFILE_ANNOTATION)
    if raw is not None:
        try:
            profile = HardwareProfile.model_validate(json.loads(raw))
            return NodeHardware(profile.model_copy(update={"source": "agent"}), "agent")
        except ValidationError as exc:
            loc, msg = next(field_errors(exc))
            more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
            notes.append(_annotation_note(f"{loc or 'profile'}: {msg}{more}"))
        except ValueError as exc:  # not JSON
            notes.append(_annotation_note(str(exc)))

    cpu, memory = _from_capacity(node, notes)
    cpu, used_nfd = _nfd_cpu(labels, cpu)
    gpus = _gfd_gpus(labels, notes)
    if gpus:
        source = "gfd"
    elif used_nfd:
        source = "nfd"
    else:
        source = "capacity"
        capacity_gpus = ((node.get("status") or {}).get("capacity") or {}).get("nvidia.com/gpu")
        if capacity_gpus:
            notes.append(
                f"node has {capacity_gpus} nvidia.com/gpu but no GFD labels or agent profile: "
                "GPU model unknown, thresholds are for the CPU"
            )
    profile = HardwareProfile(cpu=cpu, memory=memory, gpus=gpus, source=source)
    return NodeHardware(profile, source, tuple(notes))
