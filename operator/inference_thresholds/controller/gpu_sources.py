"""What a Node says about its NVIDIA GPUs without our agent: GPU Feature Discovery's labels
and the device plugin's extended resources in ``status.allocatable``.

Label and resource names are those of NVIDIA's k8s-device-plugin (GFD lives there,
``internal/lm``): ``nvidia.com/gpu.product`` (spaces as '-', ``-MIG-<profile>`` under the
``single`` MIG strategy, ``-SHARED`` when time-sliced or MPS-shared without renaming),
``gpu.count``, ``gpu.memory`` (MiB), ``gpu.compute.major/minor``, ``gpu.replicas``,
``gpu.sharing-strategy`` (none, time-slicing, mps), ``nvidia.com/mig.strategy`` (single,
mixed) and under ``mixed`` one label set per profile, ``nvidia.com/mig-<profile>.count``,
``.memory``, ``.multiprocessors``, ``.slices.gi``, ``.replicas``, ``.sharing-strategy``.
Resources: ``nvidia.com/gpu``, ``nvidia.com/gpu.shared`` (renamed replicas),
``nvidia.com/mig-<profile>`` ('+' in a profile becomes '.').

Everything here is read from the cluster: numbers are bounded, unparsable values are
dropped with a note, and at most a fixed number of profiles is read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api import DeviceInfo, GpuPartition, GpuSharing
from ..api.node_contract import parse_quantity

NVIDIA = "nvidia.com/"
WHOLE_GPU = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"
MIG_STRATEGY = "nvidia.com/mig.strategy"
MAX_PROFILES = 32  # A100/H100 have 7 GPU instance profiles; a bound against junk labels
MAX_COUNT = 100_000
# '.shared' ends a renamed replica resource; it is not a profile attribute.
_PROFILE = r"(?:\d{1,2}c\.)?\d{1,2}g\.\d{1,4}gb(?:\.(?!shared$)[a-z]+)*"
_PRODUCT = re.compile(
    rf"^(?P<base>.+?)(?:-MIG-(?P<profile>{_PROFILE}|INVALID))?(?P<shared>-SHARED)?$"
)
_MIG_RESOURCE = re.compile(rf"^nvidia\.com/mig-(?P<profile>{_PROFILE})(?P<shared>\.shared)?$")
_PROFILE_FORM = re.compile(r"^((?:\d+c\.)?\d+g\.\d+gb)(?:\.(.+))?$")


def canonical_profile(resource_form: str) -> str:
    """'1g.10gb.me' (resource and label form) -> '1g.10gb+me' (NVIDIA's profile name)."""
    match = _PROFILE_FORM.match(resource_form)
    if not match or not match.group(2):
        return resource_form
    return f"{match.group(1)}+{match.group(2)}"


def _count(text: str | None) -> int | None:
    """A label or quantity that must be a whole number within bounds; None otherwise."""
    if text is None:
        return None
    try:
        value = parse_quantity(str(text))
    except ValueError:
        return None
    if value != int(value) or not 0 <= value <= MAX_COUNT:
        return None
    return int(value)


@dataclass
class GfdView:
    """GFD's description of the node's main GPU product, with the labels behind each field."""

    device: DeviceInfo
    strategy: str | None
    evidence: dict[str, str] = field(default_factory=dict)


def _sharing(
    labels: Mapping[str, str], prefix: str, shared_suffix: bool
) -> tuple[GpuSharing, int | None]:
    replicas = _count(labels.get(prefix + ".replicas"))
    strategy = labels.get(prefix + ".sharing-strategy", "")
    if strategy == GpuSharing.MPS:
        return GpuSharing.MPS, replicas if replicas and replicas > 1 else None
    if strategy == GpuSharing.TIME_SLICING or shared_suffix or (replicas or 0) > 1:
        # Before sharing-strategy existed, time-slicing was the only way to share.
        return GpuSharing.TIME_SLICING, replicas if replicas and replicas > 1 else None
    return GpuSharing.NONE, None


def _instance(
    labels: Mapping[str, str], prefix: str, resource: str, profile: str, count: int, shared: bool
) -> GpuPartition:
    """A MIG instance kind from GFD's attribute labels under ``prefix`` (``.memory``,
    ``.multiprocessors``, ``.slices.gi``, ``.replicas``, ``.sharing-strategy``)."""
    product_shared = labels.get(prefix + ".product", "").endswith("-SHARED")
    sharing, replicas = _sharing(labels, prefix, shared or product_shared)
    return GpuPartition(
        resource=resource,
        mig_profile=canonical_profile(profile),
        count=count,
        memory_mib=_count(labels.get(prefix + ".memory")) or None,
        multiprocessors=_count(labels.get(prefix + ".multiprocessors")) or None,
        compute_slices=_count(labels.get(prefix + ".slices.gi")) or None,
        sharing=sharing,
        replicas=replicas,
    )


def _mixed_partitions(
    labels: Mapping[str, str], evidence: dict[str, str], notes: list[str]
) -> list[GpuPartition]:
    names = sorted(
        key[len(NVIDIA) : -len(".count")]
        for key in labels
        if key.startswith(NVIDIA + "mig-") and key.endswith(".count")
    )
    if len(names) > MAX_PROFILES:
        notes.append(f"{len(names)} MIG profiles labelled; read the first {MAX_PROFILES}")
    parts: list[GpuPartition] = []
    for name in names[:MAX_PROFILES]:
        prefix = NVIDIA + name
        count = _count(labels.get(prefix + ".count"))
        if not count:
            continue
        # Replicas renamed by the device plugin: nvidia.com/mig-1g.10gb.shared.
        profile = name.removeprefix("mig-").removesuffix(".shared")
        try:
            parts.append(
                _instance(labels, prefix, prefix, profile, count, shared=name.endswith(".shared"))
            )
        except ValidationError:
            notes.append(f"ignored GFD labels {prefix}.*: not a MIG profile")
            continue
        evidence[f"partitions[{name}]"] = f"{prefix}.count={count}"
    return parts


def _single_partition(
    labels: Mapping[str, str], profile: str, shared: bool, evidence: dict[str, str]
) -> GpuPartition:
    """Under mig.strategy=single the gpu.* labels describe the MIG devices, not the GPUs."""
    g = NVIDIA + "gpu"
    evidence["partitions[gpu]"] = f"{MIG_STRATEGY}=single, {g}.product=...-MIG-{profile}"
    return _instance(labels, g, WHOLE_GPU, profile, _count(labels.get(g + ".count")) or 1, shared)


def _instances_per_gpu(part: GpuPartition) -> int:
    """How many instances of a profile fit one GPU at most: 7 compute slices (a bound, used
    only to estimate the GPU count the single strategy hides)."""
    return max(1, 7 // (part.compute_slices or 1))


def gfd_view(labels: Mapping[str, str], notes: list[str]) -> GfdView | None:
    """The GPUs GFD labelled, or None when it labelled none."""
    raw_product = labels.get(NVIDIA + "gpu.product")
    if not raw_product:
        return None
    match = _PRODUCT.match(raw_product)
    assert match is not None  # the pattern accepts any non-empty text
    base, profile, shared = match.group("base"), match.group("profile"), bool(match.group("shared"))
    strategy = labels.get(MIG_STRATEGY)
    evidence = {"product": f"{NVIDIA}gpu.product={raw_product}"}
    major = labels.get(NVIDIA + "gpu.compute.major", "")
    minor = labels.get(NVIDIA + "gpu.compute.minor", "")
    capability = f"{major}.{minor}" if major.isdigit() and minor.isdigit() else None
    if (major or minor) and capability is None:
        notes.append(f"ignored GFD compute capability {major!r}.{minor!r}")
    if capability:
        evidence["computeCapability"] = f"{NVIDIA}gpu.compute.major/minor"
    count = _count(labels.get(NVIDIA + "gpu.count"))
    memory = _count(labels.get(NVIDIA + "gpu.memory")) or None
    partitions: list[GpuPartition] | None = None
    if profile == "INVALID":
        notes.append(
            f"GFD: {NVIDIA}gpu.product={raw_product}: the single MIG strategy found mixed or "
            "empty MIG GPUs, the device plugin offers no GPU here"
        )
        partitions, count = [], None
    elif profile is not None:  # single strategy (or a GFD too old to say)
        part = _single_partition(labels, profile, shared, evidence)
        partitions = [part]
        # gpu.count and gpu.memory describe the MIG devices: the GPUs are not labelled.
        count = -(-part.count // _instances_per_gpu(part))
        memory = None
        notes.append(
            f"GFD mig.strategy=single labels {part.count} MIG {part.mig_profile} devices, not "
            f"GPUs: at least {count} GPU(s) estimated"
        )
    elif strategy == "mixed":
        # The strategy is set cluster-wide: a node without MIG instances has whole GPUs.
        partitions = _mixed_partitions(labels, evidence, notes) or None
    else:
        sharing, replicas = _sharing(labels, NVIDIA + "gpu", shared)
        if sharing is not GpuSharing.NONE:
            partitions = [
                GpuPartition(
                    resource=WHOLE_GPU, count=count or 1, sharing=sharing, replicas=replicas
                )
            ]
            evidence["partitions[gpu]"] = (
                f"{NVIDIA}gpu.sharing-strategy={sharing}, {NVIDIA}gpu.replicas={replicas}"
            )
    if count:
        evidence["count"] = f"{NVIDIA}gpu.count={count}" if profile is None else "estimated"
    if memory:
        evidence["memoryMiB"] = f"{NVIDIA}gpu.memory={memory}"
    device = DeviceInfo(
        vendor="nvidia",
        # GFD replaces spaces with '-'; give people the readable name back.
        product=base.replace("-", " "),
        count=count or 1,
        memory_mib=memory,
        compute_capability=capability,
        mig_enabled=True if profile is not None or (strategy == "mixed" and partitions) else None,
        partitions=partitions,
    )
    return GfdView(device, strategy, evidence)


@dataclass(frozen=True)
class NvidiaResources:
    """The device plugin's extended resources on the node (allocatable, else capacity)."""

    counts: dict[str, int] = field(default_factory=dict)
    via: str = "status.allocatable"

    def get(self, resource: str) -> int:
        return self.counts.get(resource, 0)

    def mig(self) -> dict[str, tuple[str, bool, int]]:
        """resource -> (profile as NVIDIA writes it, shared, count) for nvidia.com/mig-*."""
        found = {}
        for resource, count in self.counts.items():
            match = _MIG_RESOURCE.match(resource)
            if match and count:
                found[resource] = (
                    canonical_profile(match.group("profile")),
                    bool(match.group("shared")),
                    count,
                )
        return found


def nvidia_resources(node: Mapping[str, Any], notes: list[str]) -> NvidiaResources:
    status = node.get("status") or {}
    via = "status.allocatable" if status.get("allocatable") else "status.capacity"
    resources = status.get("allocatable") or status.get("capacity") or {}
    if not isinstance(resources, Mapping):
        return NvidiaResources(via=via)
    counts: dict[str, int] = {}
    for key in list(resources)[:256]:
        if not isinstance(key, str) or not key.startswith(NVIDIA):
            continue
        value = _count(str(resources[key]))
        if value is None:
            notes.append(f"ignored {via} {key[:80]}: not a whole count")
            continue
        counts[key] = value
        if len(counts) >= MAX_PROFILES + 2:
            break
    return NvidiaResources(counts, via)
