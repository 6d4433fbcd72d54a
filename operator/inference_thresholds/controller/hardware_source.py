"""Node object -> HardwareProfile, merged field by field from what the node offers.

Sources: our agent's full JSON profile annotation; NVIDIA GPU Feature Discovery labels
and the device plugin's ``nvidia.com/*`` resources (``gpu_sources.py``); NFD labels (CPU
ISA, vendor); ``status.allocatable``/``nodeInfo``. ``hardware_merge.py`` combines them
and records which source gave each field, for the decision log.

A Node is written by its kubelet, its agent and anyone allowed to patch Nodes, so every
value is bounded here (``bounds.py`` for the JSON, the profile model's limits for the
numbers): a refused value is left out, said in ``rejected`` (the operator reports it on
the Node) and the node is still served from what remains. Nothing a Node holds makes
this raise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..api import CpuInfo, HardwareProfile, MemoryInfo
from ..api.errors import field_errors
from ..api.hardware import CORES_MAX, MEMORY_MAX_MIB
from ..api.node_contract import PROFILE_ANNOTATION, parse_quantity
from ..bounds import InputRejected, clip, load_json
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
# The agent's profile is ~2 KB and nests 5 levels (profile, gpus, list, device,
# partitions); an object's annotations may hold 256 KiB in all.
PROFILE_MAX_BYTES = 64 * 1024
PROFILE_MAX_DEPTH = 8
MIN_CORES = 0.001  # 1m, the smallest CPU quantity Kubernetes schedules


@dataclass(frozen=True)
class NodeHardware:
    profile: HardwareProfile
    source: str
    notes: tuple[str, ...] = ()
    fields: tuple[FieldSource, ...] = ()
    # Values the node offered that were refused (invalid, oversized, out of bounds); each
    # is also among ``notes``. The operator reports them on the Node.
    rejected: tuple[str, ...] = ()


class _Refusals(list[str]):
    """The notes of one Node being read, and which of them refuse a value (``reject``)."""

    def __init__(self) -> None:
        super().__init__()
        self.rejected: list[str] = []

    def reject(self, text: str) -> None:
        self.append(text)
        self.rejected.append(text)


def _quantity(
    resources: Mapping[str, Any],
    where: str,
    key: str,
    bounds: tuple[float, float, str],
    notes: _Refusals,
) -> float | None:
    """One resource quantity within ``bounds`` (low, high, as text), else None (said in
    ``notes``)."""
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
    notes.reject(f"ignored {where}.{key} {clip(raw, 40)!r}: not a quantity in {range_text}")
    return None


def _from_capacity(node: Mapping[str, Any], notes: _Refusals) -> tuple[CpuInfo, MemoryInfo, str]:
    status = node.get("status") or {}
    # allocatable is what pods can actually get; capacity when it is missing.
    via = "status.allocatable" if status.get("allocatable") else "status.capacity"
    resources = status.get("allocatable") or status.get("capacity") or {}
    info = status.get("nodeInfo") or {}
    if not isinstance(resources, Mapping) or not isinstance(info, Mapping):
        notes.reject(f"ignored {via}: not an object")
        resources, info = {}, {}
    cores = _quantity(
        resources, via, "cpu", (MIN_CORES, CORES_MAX, f"1m..{CORES_MAX} cores"), notes
    )
    memory = _quantity(
        resources, via, "memory", (2**20, MEMORY_MAX_MIB * 2**20, "1Mi..128Ti"), notes
    )
    arch = info.get("architecture")
    if not isinstance(arch, str) or len(arch) > 32:
        arch = None
    cpu = CpuInfo(
        architecture=_ARCH.get(arch, arch) if arch else None,
        logical_cores=int(cores) if cores and cores >= 1 else None,
        usable_cores=cores,
    )
    return cpu, MemoryInfo(total_mib=int(memory / 2**20) if memory else None), via


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
        f"annotation {PROFILE_ANNOTATION} is not a valid profile ({clip(why, 300)}); "
        "fell back to labels"
    )


def agent_profile(annotations: Mapping[str, str], notes: list[str]) -> HardwareProfile | None:
    """The agent's profile from its annotation; None (with a note) when absent or invalid:
    size, nesting and every value bounded before it is believed."""
    raw = annotations.get(PROFILE_ANNOTATION)
    if raw is None:
        return None
    reject = notes.reject if isinstance(notes, _Refusals) else notes.append
    if not isinstance(raw, str):
        reject(_annotation_note("not a string"))
        return None
    try:
        data = load_json(
            raw, max_bytes=PROFILE_MAX_BYTES, max_depth=PROFILE_MAX_DEPTH, what="the annotation"
        )
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        loc, msg = next(field_errors(exc))
        more = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
        reject(_annotation_note(f"{loc or 'profile'}: {msg}{more}"))
    except InputRejected as exc:
        reject(_annotation_note(str(exc)))
    return None


def node_hardware(node: Mapping[str, Any]) -> NodeHardware:
    """The hardware profile of a Node object (a plain dict as the API returns it)."""
    notes = _Refusals()
    try:
        return _read(node, notes)
    except Exception as exc:  # a last resort: one Node never stops the operator
        notes.reject(f"could not read the node's hardware: {type(exc).__name__}: {exc}"[:400])
        profile = HardwareProfile(source="capacity")
        return NodeHardware(profile, "capacity", tuple(notes), (), tuple(notes.rejected))


def _read(node: Mapping[str, Any], notes: _Refusals) -> NodeHardware:
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
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
    return NodeHardware(
        profile,
        source,
        tuple(notes + merge.notes),
        tuple(merge.fields),
        tuple(notes.rejected),
    )
