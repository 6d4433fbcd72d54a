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
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from ..api import CpuInfo, DeviceInfo, HardwareProfile, MemoryInfo

PROFILE_ANNOTATION = "hw.inference.dev/profile"
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

_SUFFIX: dict[str, int | Decimal] = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
}  # fmt: skip
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def parse_quantity(text: str) -> Decimal:
    """A Kubernetes resource quantity ('16', '15500m', '65843168Ki', '64Gi') as a number."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from exc
    return number * Decimal(str(_SUFFIX[match.group(2) or ""]))


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
        except (ValueError, ValidationError) as exc:
            first = str(exc).splitlines()[0:3]
            notes.append(
                f"annotation {PROFILE_ANNOTATION} is not a valid profile ({'; '.join(first)}); "
                "fell back to labels"
            )

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
