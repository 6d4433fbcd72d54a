"""The share of a GPU one pod gets when the GPU is partitioned or shared.

MIG (NVIDIA Multi-Instance GPU User Guide, "Supported MIG Profiles"): a GPU instance owns
whole memory slices -- each 1/8 of the memory, with its memory controllers and L2 cache,
so 1/8 of the bandwidth -- and compute slices of 1/7 of the SMs (1/4 on A30 and RTX PRO
Blackwell). 1g.10gb on an A100-80GB: 1/8 of the memory and bandwidth, 1/7 of the SMs.
Where NVML reported the instance's SM count and the GPU's, their ratio is used instead
(an A100's 7g instance has 98 of its 108 SMs).

Time-slicing (NVIDIA k8s-device-plugin, "Shared Access to GPUs"): replicas interleave
on the whole GPU with no isolation; 1/replicas of its bandwidth and compute is the share
each gets when all are busy -- a conservative floor, a lone pod gets more. Memory is not
partitioned. MPS: the device plugin's control daemon sets each client's active thread
percentage to 100/replicas and its pinned device memory to memory/replicas; bandwidth is
not partitioned, so 1/replicas is again the floor.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from ..api import DeviceInfo, GpuPartition, GpuSharing
from .explain import DecisionLog, fmt
from .specs import DeviceSpec


class PartitionInputError(ValueError):
    """The requested GPU resource is not offered; the message lists what is."""


WHOLE_GPU_RESOURCE = "nvidia.com/gpu"
MIG_MEMORY_SLICES = 8
# GPUs whose MIG geometry has fewer than 7 compute slices (MIG user guide, Supported GPUs:
# maximum number of instances). Keys are the spec table's.
_COMPUTE_SLICES = {"A30": 4, "RTX PRO 6000": 4}
_DEFAULT_COMPUTE_SLICES = 7
_PROFILE = re.compile(r"^(?:(\d+)c\.)?(\d+)g\.(\d+)gb")


@dataclass(frozen=True)
class SliceShare:
    """What one pod gets of one device: shares of its bandwidth and compute, its memory,
    each with the reason in words."""

    name: str
    resource: str | None
    bandwidth: float
    compute: float
    memory_mib: float | None
    bandwidth_why: str = ""
    compute_why: str = ""
    memory_why: str = ""


def profile_slices(profile: str) -> tuple[int, int, int] | None:
    """(compute-instance slices, GPU-instance slices, GB) of '1c.2g.20gb' style names."""
    match = _PROFILE.match(profile)
    if not match:
        return None
    g = int(match.group(2))
    return int(match.group(1) or g), g, int(match.group(3))


def resource_of_profile(profile: str) -> str:
    """The mixed-strategy resource name: '+' is not allowed there, the plugin writes '.'."""
    return f"nvidia.com/mig-{profile.replace('+', '.')}"


def _offers(part: GpuPartition, wanted: str) -> bool:
    if part.resource is not None:
        return part.resource == wanted
    # Seen by NVML only: the name the mixed strategy would give it.
    return part.mig_profile is not None and resource_of_profile(part.mig_profile) == wanted


def _describe(part: GpuPartition) -> str:
    what = f"MIG {part.mig_profile}" if part.mig_profile else "whole GPU"
    if part.sharing is not GpuSharing.NONE:
        what += f", {part.sharing} x{part.replicas or '?'}"
    return f"{part.resource or 'resource unknown'} ({what})"


def offered(devices: list[DeviceInfo]) -> str:
    """What a node's GPUs offer, for messages: 'nvidia.com/gpu (whole GPU), ...'."""
    parts: list[str] = []
    for dev in devices:
        if dev.partitions:
            parts.extend(_describe(p) for p in dev.partitions)
        else:
            parts.append(f"{WHOLE_GPU_RESOURCE} (whole GPU)")
    return ", ".join(dict.fromkeys(parts))


def choose_group(devices: list[DeviceInfo], wanted: str | None) -> DeviceInfo | None:
    """The GPU group that offers ``wanted``; None when there is no request (the caller's
    default group then)."""
    if wanted is None:
        return None
    for dev in sorted(devices, key=lambda d: -d.count):
        if dev.partitions and any(_offers(p, wanted) for p in dev.partitions):
            return dev
        if not dev.partitions and wanted.endswith("/gpu"):
            return dev
    raise PartitionInputError(
        f"context.constraints.gpuResource {wanted} is not offered by this node; it offers "
        f"{offered(devices)}: request one of those or select other nodes"
    )


def _memory_eighths(part: GpuPartition, device_mib: float | None) -> int | None:
    """Memory slices of the instance, from its memory or its profile name (go-nvlib names
    a profile by ceil(8 x share)/8 x ceil(device GiB), so the nearest eighth inverts it)."""
    if device_mib is None:
        return None
    if part.memory_mib is not None:
        share = part.memory_mib / device_mib
    else:
        parsed = profile_slices(part.mig_profile or "")
        if parsed is None:
            return None
        share = parsed[2] / math.ceil(device_mib / 1024)
    return max(1, min(MIG_MEMORY_SLICES, round(share * MIG_MEMORY_SLICES)))


def _mig_share(
    dev: DeviceInfo, part: GpuPartition, spec: DeviceSpec | None, device_mib: float | None
) -> SliceShare:
    assert part.mig_profile is not None
    parsed = profile_slices(part.mig_profile)
    g = part.compute_slices or (parsed[1] if parsed else None)
    c = parsed[0] if parsed else g
    total = _COMPUTE_SLICES.get(spec.key if spec else "", _DEFAULT_COMPUTE_SLICES)
    if part.multiprocessors and dev.sm_count:
        compute = min(1.0, part.multiprocessors / dev.sm_count)
        compute_why = f"{part.multiprocessors} of {dev.sm_count} SMs (NVML)"
    elif c:
        compute = min(1.0, c / total)
        compute_why = f"{c}/{total} of the SMs (MIG user guide: fraction of SMs)"
    else:
        compute = 1 / total
        compute_why = f"compute slices unknown: 1/{total} of the SMs assumed"
    eighths = _memory_eighths(part, device_mib)
    if eighths is not None:
        bandwidth = eighths / MIG_MEMORY_SLICES
        bandwidth_why = (
            f"{eighths}/8 memory slices, each with 1/8 of the memory controllers "
            "(MIG user guide: fraction of memory)"
        )
    else:
        bandwidth = compute
        bandwidth_why = "memory slices unknown: the compute share assumed"
    if g and c and c < g:
        bandwidth *= c / g
        bandwidth_why += (
            f"; a {c}-slice compute instance shares its {g}-slice GPU instance's bandwidth: "
            f"{c}/{g} of it as a floor"
        )
    memory: float | None = float(part.memory_mib) if part.memory_mib else None
    memory_why = "NVML memorySizeMB of the instance"
    if memory is None and eighths is not None and device_mib is not None:
        memory = device_mib * eighths / MIG_MEMORY_SLICES
        memory_why = f"{eighths}/8 of {fmt(device_mib)} MiB"
    return SliceShare(
        f"MIG {part.mig_profile}",
        part.resource,
        bandwidth,
        compute,
        memory,
        bandwidth_why,
        compute_why,
        memory_why,
    )


def _shared(share: SliceShare, part: GpuPartition) -> SliceShare:
    """A MIG instance or whole GPU handed to several pods (time-slicing or MPS)."""
    if part.replicas is None:
        note = (
            f"; {part.sharing} with an unknown replica count: no reduction assumed "
            "(GPU Feature Discovery's nvidia.com/gpu.replicas would give it)"
        )
        return replace(
            share,
            name=f"{share.name}, {part.sharing}",
            bandwidth_why=share.bandwidth_why + note,
            compute_why=share.compute_why + note,
        )
    r = part.replicas
    memory, memory_why = share.memory_mib, share.memory_why
    if part.sharing is GpuSharing.MPS:
        why = f"MPS x{r}: active thread percentage 100/{r}"
        bandwidth_why = f"MPS x{r}: bandwidth is not partitioned, 1/{r} as a floor"
        if memory is not None:
            memory, memory_why = memory / r, f"{memory_why} / {r} (MPS pinned memory limit)"
    else:
        why = f"time-sliced x{r}: 1/{r} as a conservative floor (all replicas busy)"
        bandwidth_why = why
        memory_why += f"; not partitioned: shared with up to {r - 1} other pods"
    return replace(
        share,
        name=f"{share.name}, {part.sharing} 1/{r}",
        bandwidth=share.bandwidth / r,
        compute=share.compute / r,
        memory_mib=memory,
        bandwidth_why="; ".join(w for w in (share.bandwidth_why, bandwidth_why) if w),
        compute_why="; ".join(w for w in (share.compute_why, why) if w),
        memory_why=memory_why,
    )


def slice_share(
    dev: DeviceInfo, part: GpuPartition, spec: DeviceSpec | None, device_mib: float | None
) -> SliceShare:
    """The share of ``dev`` a pod on ``part`` gets."""
    if part.mig_profile:
        share = _mig_share(dev, part, spec, device_mib)
    else:
        share = SliceShare("whole GPU", part.resource, 1.0, 1.0, device_mib, memory_why="device")
    return share if part.sharing is GpuSharing.NONE else _shared(share, part)


def choose_partition(dev: DeviceInfo, wanted: str | None, log: DecisionLog) -> GpuPartition | None:
    """The partition a pod on ``dev`` gets; None for whole GPUs with nothing else offered."""
    if dev.partitions is None:
        return None
    options = dev.partitions
    if not options:
        raise PartitionInputError(
            f"{dev.product}: MIG is enabled but no MIG instance is offered, so pods get no GPU "
            "here; create MIG instances (nvidia.com/mig.config) or select other nodes"
        )
    if wanted is not None:
        picked = next((p for p in options if _offers(p, wanted)), None)
        if picked is None:
            raise PartitionInputError(
                f"context.constraints.gpuResource {wanted} is not offered by {dev.product}; "
                f"it offers {offered([dev])}"
            )
        log.add("device.partition.request", wanted, None, "input", "constraints.gpuResource")
        return picked
    if len(options) == 1:
        return options[0]
    plain = next((p for p in options if p.resource == WHOLE_GPU_RESOURCE), None)
    if plain is not None:
        log.add(
            "device.partition.request",
            WHOLE_GPU_RESOURCE,
            None,
            "computed",
            f"several offered ({offered([dev])}); a pod requesting {WHOLE_GPU_RESOURCE} gets "
            "this one; set context.constraints.gpuResource for another",
        )
        return plain
    smallest = min(options, key=lambda p: slice_share(dev, p, None, dev.memory_mib).bandwidth)
    log.add(
        "device.partition.request",
        smallest.resource or smallest.mig_profile,
        None,
        "computed",
        f"several offered ({offered([dev])}); the smallest assumed (the slowest a pod may "
        "get); set context.constraints.gpuResource to choose",
    )
    return smallest


def log_share(
    share: SliceShare, product: str, bandwidth: float | None, tflops: float | None, log: DecisionLog
) -> None:
    """The slice named in the decision log, with the shares and what they leave."""
    log.add(
        "device.partition",
        share.name,
        None,
        "input",
        f"{share.resource or 'resource unknown'} on {product}; a pod gets one instance",
    )
    log.add(
        "device.partition.bandwidthShare",
        share.bandwidth,
        None,
        "computed",
        share.bandwidth_why
        + (f" -> {fmt(bandwidth * share.bandwidth)} of {fmt(bandwidth)} GB/s" if bandwidth else ""),
    )
    log.add(
        "device.partition.computeShare",
        share.compute,
        None,
        "computed",
        share.compute_why
        + (f" -> {fmt(tflops * share.compute)} of {fmt(tflops)} TFLOPS" if tflops else ""),
    )
    if share.memory_mib is not None:
        log.add("device.partition.memoryMiB", share.memory_mib, "MiB", "computed", share.memory_why)
