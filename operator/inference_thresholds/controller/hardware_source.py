"""Node object -> HardwareProfile, merged field by field from what the node offers.

Sources: our agent's full JSON profile annotation; NVIDIA GPU Feature Discovery labels
and the device plugin's ``nvidia.com/*`` resources (``gpu_sources.py``); NFD labels (CPU
ISA, vendor); ``status.allocatable``/``nodeInfo``. ``hardware_merge.py`` combines them
and records which source gave each field, for the decision log.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import CpuInfo, HardwareProfile, MemoryInfo
from ..api.errors import field_errors
from ..api.node_contract import PROFILE_ANNOTATION, parse_quantity
from .gpu_sources import gfd_view, nvidia_resources
from .hardware_merge import FieldSource, Merge, merge_gpus, merge_host

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
    fields: tuple[FieldSource, ...] = ()


def _from_capacity(node: Mapping[str, Any], notes: list[str]) -> tuple[CpuInfo, MemoryInfo, str]:
    status = node.get("status") or {}
    # allocatable is what pods can actually get; capacity when it is missing.
    via = "status.allocatable" if status.get("allocatable") else "status.capacity"
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
    return cpu, MemoryInfo(total_mib=memory_mib), via


def _nfd_cpu(labels: Mapping[str, str]) -> tuple[CpuInfo, str] | None:
    isa = sorted(
        {
            name
            for flag, name in _NFD_ISA.items()
            if labels.get(NFD_CPUID_PREFIX + flag, "").lower() == "true"
        }
    )
    vendor = _NFD_VENDOR.get(labels.get(NFD_VENDOR_LABEL, ""))
    if not isa and vendor is None:
        return None
    return CpuInfo(isa=isa, vendor=vendor), "feature.node.kubernetes.io/cpu-*"


def _annotation_note(why: str) -> str:
    # Bounded: the annotation is the node's to write, and the note lands in status.
    return (
        f"annotation {PROFILE_ANNOTATION} is not a valid profile ({why[:300]}); fell back to labels"
    )


def agent_profile(annotations: Mapping[str, str], notes: list[str]) -> HardwareProfile | None:
    """The agent's profile from its annotation; None (with a note) when absent or invalid."""
    raw = annotations.get(PROFILE_ANNOTATION)
    if raw is None:
        return None
    try:
        return HardwareProfile.model_validate(json.loads(raw))
    except ValidationError as exc:
        loc, msg = next(field_errors(exc))
        more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
        notes.append(_annotation_note(f"{loc or 'profile'}: {msg}{more}"))
    except ValueError as exc:  # not JSON
        notes.append(_annotation_note(str(exc)))
    return None


def node_hardware(node: Mapping[str, Any]) -> NodeHardware:
    """The hardware profile of a Node object (a plain dict as the API returns it)."""
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    notes: list[str] = []
    merge = Merge()

    agent = agent_profile(annotations, notes)
    cpu, memory = merge_host(
        agent.cpu if agent else None,
        agent.memory if agent else None,
        _from_capacity(node, notes),
        _nfd_cpu(labels),
        merge,
    )
    gpus = merge_gpus(
        agent.gpus if agent else None,
        gfd_view(labels, notes),
        nvidia_resources(node, notes),
        merge,
    )
    if agent is not None and agent.accelerators:
        merge.took("accelerators", "agent", "profile annotation")
    source = merge.sources()
    profile = HardwareProfile(
        cpu=cpu,
        memory=memory,
        gpus=gpus,
        accelerators=agent.accelerators if agent else [],
        source=source,
    )
    return NodeHardware(profile, source, tuple(notes + merge.notes), tuple(merge.fields))
