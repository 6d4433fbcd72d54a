"""One hardware profile from several sources, field by field, saying which gave what.

Sources, best first: the node agent's profile (NVML, /proc, /sys), GPU Feature
Discovery's labels, NFD's CPU labels, and the node's resources (``status.allocatable``:
CPU, memory, the device plugin's ``nvidia.com/*``). The agent knows the hardware; only
the cluster knows how the device plugin hands GPUs out (MIG strategy, replicas,
resource names), so those come from GFD and the resources even when the agent is there.
An agent profile without GPUs (no NVML in its container) on a node that GFD or the
device plugin says has GPUs is computed as a GPU node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from pydantic import BaseModel

from ..api import CpuInfo, DeviceInfo, GpuPartition, GpuSharing, MemoryInfo
from ..engine.partition import resource_of_profile
from .gpu_sources import SHARED_GPU, WHOLE_GPU, GfdView, NvidiaResources

UNKNOWN_GPU = "NVIDIA GPU (model unknown)"
SOURCE_ORDER = ("agent", "gfd", "nfd", "capacity")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class FieldSource:
    """One field of the merged profile and where it came from (for the decision log)."""

    field: str
    source: str
    via: str


@dataclass
class Merge:
    fields: list[FieldSource] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def took(self, name: str, source: str, via: str) -> None:
        self.fields.append(FieldSource(name, source, via))

    def sources(self) -> str:
        used = {f.source for f in self.fields}
        return "+".join(s for s in SOURCE_ORDER if s in used) or "capacity"


def _empty(value: object) -> bool:
    return value is None or value == []


def fill_gaps(primary: M, fallback: M, name: str, source: str, via: str, merge: Merge) -> M:
    """``primary`` with each unset field taken from ``fallback`` (recorded)."""
    # Only the fields the fallback source set (a handful): this runs on every Node event.
    update = {
        key: getattr(fallback, key)
        for key in fallback.model_fields_set
        if not _empty(getattr(fallback, key)) and _empty(getattr(primary, key))
    }
    for key in update:
        merge.took(f"{name}.{type(primary).model_fields[key].alias or key}", source, via)
    return primary.model_copy(update=update) if update else primary


def _record(model: BaseModel, name: str, source: str, via: str, merge: Merge) -> None:
    for key in sorted(model.model_fields_set):
        if not _empty(getattr(model, key)):
            merge.took(f"{name}.{type(model).model_fields[key].alias or key}", source, via)


def merge_host(
    agent_cpu: CpuInfo | None,
    agent_memory: MemoryInfo | None,
    capacity: tuple[CpuInfo, MemoryInfo, str],
    nfd: tuple[CpuInfo, str] | None,
    merge: Merge,
) -> tuple[CpuInfo, MemoryInfo]:
    """CPU and memory: the agent's, gaps filled from NFD, then from the node's resources."""
    cap_cpu, cap_memory, cap_via = capacity
    if agent_cpu is None or agent_memory is None:  # no agent: NFD's CPU labels, then resources
        if nfd is None:
            _record(cap_cpu, "cpu", "capacity", cap_via, merge)
            cpu = cap_cpu
        else:
            _record(nfd[0], "cpu", "nfd", nfd[1], merge)
            cpu = fill_gaps(nfd[0], cap_cpu, "cpu", "capacity", cap_via, merge)
        _record(cap_memory, "memory", "capacity", cap_via, merge)
        return cpu, cap_memory
    merge.took("cpu", "agent", "profile annotation")
    merge.took("memory", "agent", "profile annotation")
    cpu = agent_cpu
    if nfd is not None:
        cpu = fill_gaps(cpu, nfd[0], "cpu", "nfd", nfd[1], merge)
    cpu = fill_gaps(cpu, cap_cpu, "cpu", "capacity", cap_via, merge)
    memory = fill_gaps(agent_memory, cap_memory, "memory", "capacity", cap_via, merge)
    return cpu, memory


def _mig_resource(
    part: GpuPartition, gfd: GfdView | None, res: NvidiaResources
) -> tuple[str, str, str] | None:
    """(resource, source, via) of an NVML-seen MIG instance, as the device plugin names it."""
    assert part.mig_profile is not None
    mixed = resource_of_profile(part.mig_profile)
    for name in (mixed, mixed + ".shared"):
        if res.get(name):
            return name, "capacity", f"{res.via} {name}={res.get(name)}"
    if gfd is not None and gfd.strategy == "single":
        return WHOLE_GPU, "gfd", "nvidia.com/mig.strategy=single"
    if not res.mig() and res.get(WHOLE_GPU):
        return (
            WHOLE_GPU,
            "capacity",
            f"{res.via} {WHOLE_GPU}={res.get(WHOLE_GPU)}, no nvidia.com/mig-*",
        )
    return None


def _gfd_partition(gfd: GfdView | None, profile: str | None) -> GpuPartition | None:
    """GFD's partition for a MIG profile (None: whole GPUs), for its sharing."""
    if gfd is None or not gfd.device.partitions:
        return None
    return next((p for p in gfd.device.partitions if p.mig_profile == profile), None)


def _complete_mig(
    i: int, dev: DeviceInfo, gfd: GfdView | None, res: NvidiaResources, merge: Merge
) -> None:
    if dev.partitions is None and gfd is not None and gfd.device.partitions:
        dev.partitions = [p.model_copy() for p in gfd.device.partitions]  # counts differ
        merge.took(f"gpus[{i}].partitions", "gfd", "MIG labels (the agent listed no instances)")
        return
    for part in dev.partitions or []:
        if part.mig_profile is None:
            continue
        if part.resource is None:
            named = _mig_resource(part, gfd, res)
            if named is not None:
                part.resource = named[0]
                merge.took(f"gpus[{i}].partitions[{part.mig_profile}].resource", named[1], named[2])
        theirs = _gfd_partition(gfd, part.mig_profile)
        if theirs is not None and theirs.sharing is not GpuSharing.NONE:
            part.sharing, part.replicas = theirs.sharing, theirs.replicas
            merge.took(
                f"gpus[{i}].partitions[{part.mig_profile}].sharing",
                "gfd",
                f"{theirs.resource}.replicas={theirs.replicas}",
            )
        elif part.resource is not None and part.resource.endswith(".shared"):
            part.sharing = GpuSharing.TIME_SLICING
            merge.took(
                f"gpus[{i}].partitions[{part.mig_profile}].sharing", "capacity", part.resource
            )


def _complete_whole(
    i: int, dev: DeviceInfo, physical: int, gfd: GfdView | None, res: NvidiaResources, merge: Merge
) -> None:
    """Sharing of whole GPUs: configured in the device plugin, so GFD or the resources say."""
    resource = SHARED_GPU if res.get(SHARED_GPU) else WHOLE_GPU
    theirs = _gfd_partition(gfd, None)
    if theirs is not None and theirs.sharing is GpuSharing.NONE:
        theirs = None
    if dev.partitions:  # the agent saw MPS; the cluster knows the replicas and the name
        for part in dev.partitions:
            if part.replicas is None and theirs is not None and theirs.replicas:
                part.replicas = theirs.replicas
                merge.took(
                    f"gpus[{i}].partitions.replicas",
                    "gfd",
                    f"nvidia.com/gpu.replicas={theirs.replicas}",
                )
            if part.resource is None and res.get(resource):
                part.resource = resource
                merge.took(f"gpus[{i}].partitions.resource", "capacity", f"{res.via} {resource}")
        return
    if theirs is not None:
        dev.partitions = [theirs.model_copy(update={"count": dev.count, "resource": resource})]
        merge.took(
            f"gpus[{i}].partitions",
            "gfd",
            f"nvidia.com/gpu.sharing-strategy={theirs.sharing}, replicas={theirs.replicas}",
        )
        return
    offered = res.get(resource)
    if physical and offered > physical and offered % physical == 0:
        replicas = offered // physical
        dev.partitions = [
            GpuPartition(
                resource=resource,
                count=dev.count,
                sharing=GpuSharing.TIME_SLICING,
                replicas=replicas,
            )
        ]
        merge.took(
            f"gpus[{i}].partitions",
            "capacity",
            f"{res.via} {resource}={offered} for {physical} GPU(s)",
        )
        merge.notes.append(
            f"{offered} {resource} for {physical} physical GPU(s): {replicas} replicas each, "
            "taken as time-slicing (no GFD sharing labels to say time-slicing or MPS)"
        )


def _from_resources(res: NvidiaResources, merge: Merge) -> DeviceInfo | None:
    """A GPU known only from the device plugin's resources: count and slices, no model."""
    whole, shared, migs = res.get(WHOLE_GPU), res.get(SHARED_GPU), res.mig()
    if not (whole or shared or migs):
        return None
    parts = [
        GpuPartition(
            resource=resource,
            mig_profile=profile,
            count=count,
            sharing=GpuSharing.TIME_SLICING if is_shared else GpuSharing.NONE,
        )
        for resource, (profile, is_shared, count) in sorted(migs.items())
    ]
    if parts and whole:
        parts.append(GpuPartition(resource=WHOLE_GPU, count=whole))
    if shared:
        parts.append(
            GpuPartition(resource=SHARED_GPU, count=shared, sharing=GpuSharing.TIME_SLICING)
        )
    merge.took(
        "gpus[0]",
        "capacity",
        f"{res.via} " + ", ".join(f"{k}={v}" for k, v in sorted(res.counts.items()) if v),
    )
    merge.notes.append(
        "GPUs known only from the device plugin's resources: model unknown, so no bandwidth "
        "or compute to derive thresholds from; run the node agent with NVML, or GPU Feature "
        "Discovery, on this node"
    )
    return DeviceInfo(
        vendor="nvidia",
        product=UNKNOWN_GPU,
        count=whole or 1,
        partitions=parts or None,
        mig_enabled=True if migs else None,
    )


def merge_gpus(
    agent: list[DeviceInfo] | None, gfd: GfdView | None, res: NvidiaResources, merge: Merge
) -> list[DeviceInfo]:
    """The node's GPUs: the agent's NVIDIA GPUs, else GFD's, else the resources'; then
    what only the cluster knows (resource names, sharing) from GFD and the resources.

    Completes the devices in place: callers pass objects parsed for this call (this runs
    on every Node event, so nothing is copied).
    """
    others = [d for d in agent or [] if d.vendor != "nvidia"]
    nvidia = [d for d in agent or [] if d.vendor == "nvidia"]
    if nvidia:
        for i in range(len(nvidia)):
            merge.took(f"gpus[{i}]", "agent", "NVML")
        physical = sum(d.count for d in nvidia if not d.mig_enabled)
        for i, dev in enumerate(nvidia):
            if dev.mig_enabled:
                _complete_mig(i, dev, gfd, res, merge)
            else:
                _complete_whole(i, dev, physical, gfd, res, merge)
    elif gfd is not None:
        dev = gfd.device
        for name, via in gfd.evidence.items():
            merge.took(f"gpus[0].{name}", "gfd", via)
        if gfd.strategy == "mixed" and dev.partitions and res.get(WHOLE_GPU):
            dev.partitions.append(GpuPartition(resource=WHOLE_GPU, count=res.get(WHOLE_GPU)))
            merge.took("gpus[0].partitions[gpu]", "capacity", f"{res.via} {WHOLE_GPU}")
        elif dev.partitions is None:
            _complete_whole(0, dev, dev.count, None, res, merge)
        for part in dev.partitions or []:
            if (
                part.mig_profile is None
                and part.sharing is not GpuSharing.NONE
                and res.get(SHARED_GPU)
            ):
                part.resource = SHARED_GPU  # replicas renamed by the device plugin
                merge.took("gpus[0].partitions.resource", "capacity", f"{res.via} {SHARED_GPU}")
        if agent is not None:
            merge.notes.append(
                "the agent's profile lists no NVIDIA GPU (no NVML in its container?): GPUs "
                "from GPU Feature Discovery's labels"
            )
        nvidia = [dev]
    else:
        from_resources = _from_resources(res, merge)
        nvidia = [from_resources] if from_resources is not None else []
    return nvidia + others
