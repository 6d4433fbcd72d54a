"""Hardware profile of one node, as the node agent publishes it.

Everything but identity is optional: the engine copes with partial profiles by
estimating from spec tables and says so in its decision log.

Every field is bounded: the profile reaches the operator through a Node annotation any
node agent (or anyone allowed to patch Nodes) writes, so a value outside what hardware
can be is refused rather than carried into thresholds. The limits sit well above the
largest machines shipping today, each with the fact it rests on.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from .base import WireModel
from .node_contract import RESOURCE_NAME_PATTERN

MIG_PROFILE_PATTERN = (
    r"^([0-9]{1,2}c\.)?[0-9]{1,2}g\.[0-9]{1,4}gb([+-][a-z]+(\.[a-z]+)?(,[a-z]+(\.[a-z]+)?)*)?$"
)
"""A MIG profile as NVIDIA writes it (go-nvlib ``MigProfileInfo.String``): ``1g.10gb``,
``1c.2g.20gb`` (a compute instance of a 2-slice GPU instance), ``1g.10gb+me``."""

NAME_MAX = 256
"""Vendor, model and product names (the longest NVML/PCI names are under 100 characters)."""
RULE_MAX = 1024
"""How a bandwidth figure was obtained: one sentence."""
ISA_MAX = 64
"""ISA feature names kept (the agent reports fewer than 30)."""
DEVICE_GROUPS_MAX = 32
"""Groups of identical devices on one node."""
CORES_MAX = 16384
"""Linux's NR_CPUS tops out at 8192 (x86 MAXSMP): twice that."""
SOCKETS_MAX = 64
NUMA_NODES_MAX = 1024
"""Linux's NODES_SHIFT is at most 10."""
FREQUENCY_MAX_MHZ = 10_000.0
"""Overclocking records stay below 9.2 GHz."""
MEMORY_MAX_MIB = 1 << 27
"""128 TiB; the largest shipping single systems hold 48 TiB."""
BANDWIDTH_MIN_GBPS = 0.1
"""A single DDR-400 channel moves 3.2 GB/s; nothing that runs a model is 30x slower."""
BANDWIDTH_MAX_GBPS = 100_000.0
"""B200: 8 TB/s per device, 12-channel DDR5 sockets ~0.6 TB/s."""
DEVICES_MAX = 100_000
"""Devices (or instances) of one kind on a node: a bound against junk, as for GFD's counts
(8-16 GPUs per server today, 7 MIG instances each)."""
DEVICE_MEMORY_MAX_MIB = 1 << 21
"""2 TiB per device; the largest GPUs carry 288 GB."""
TFLOPS_MIN = 0.001
"""1 GFLOPS: a Raspberry Pi 1 core reaches ~0.2 GFLOPS; no accelerator is slower."""
TFLOPS_MAX = 100_000.0
"""B200: 2,250 dense FP16 TFLOPS, 4,500 INT8 TOPS."""
SM_MAX = 100_000


class BandwidthSource(StrEnum):
    SPEC = "spec"
    MEASURED = "measured"
    ESTIMATED = "estimated"


class CpuInfo(WireModel):
    vendor: str | None = Field(
        None, max_length=NAME_MAX, description="CPU vendor, e.g. intel, amd, arm, apple."
    )
    model: str | None = Field(
        None, max_length=NAME_MAX, description="CPU model name as reported by the OS."
    )
    architecture: str | None = Field(
        None, max_length=NAME_MAX, description="Machine architecture: x86_64, aarch64."
    )
    physical_cores: int | None = Field(
        None, ge=1, le=CORES_MAX, description="Physical cores on the node."
    )
    logical_cores: int | None = Field(
        None, ge=1, le=CORES_MAX, description="Hardware threads on the node."
    )
    usable_cores: float | None = Field(
        None,
        ge=0.001,
        le=CORES_MAX,
        description="Cores a pod may use: min of the cgroup CPU quota, the cpuset and the cores.",
    )
    base_frequency_mhz: float | None = Field(
        None, ge=1, le=FREQUENCY_MAX_MHZ, description="Base clock in MHz."
    )
    max_frequency_mhz: float | None = Field(
        None, ge=1, le=FREQUENCY_MAX_MHZ, description="Maximum boost clock in MHz."
    )
    isa: list[Annotated[str, Field(max_length=32)]] = Field(
        default_factory=list,
        max_length=ISA_MAX,
        description="ISA features relevant to inference kernels (avx2, avx512_vnni, amx_int8, "
        "neon, asimddp, sve, i8mm, ...), lower case.",
    )
    sockets: int | None = Field(None, ge=1, le=SOCKETS_MAX, description="CPU sockets.")
    numa_nodes: int | None = Field(None, ge=1, le=NUMA_NODES_MAX, description="NUMA nodes.")


class MemoryInfo(WireModel):
    total_mib: int | None = Field(
        None, ge=1, le=MEMORY_MAX_MIB, description="Total system memory in MiB."
    )
    bandwidth_gbps: float | None = Field(
        None,
        ge=BANDWIDTH_MIN_GBPS,
        le=BANDWIDTH_MAX_GBPS,
        description="Theoretical (spec) or measured system memory bandwidth in GB/s.",
    )
    bandwidth_source: BandwidthSource | None = Field(
        None, description="Where bandwidthGBps comes from: spec, measured or estimated."
    )
    bandwidth_rule: str | None = Field(
        None,
        max_length=RULE_MAX,
        description="How the bandwidth was obtained (table entry, probe, estimate rule).",
    )
    bandwidth_threads: int | None = Field(
        None,
        ge=1,
        le=CORES_MAX,
        description="Measured only: threads that read at once to reach bandwidthGBps (the "
        "cores the probing process could use); more cores may reach more.",
    )
    per_core_bandwidth_gbps: float | None = Field(
        None,
        ge=BANDWIDTH_MIN_GBPS,
        le=BANDWIDTH_MAX_GBPS,
        description="Measured only: read bandwidth one thread (one core) reaches.",
    )


class GpuSharing(StrEnum):
    NONE = "none"
    TIME_SLICING = "time-slicing"
    MPS = "mps"


class GpuPartition(WireModel):
    """One kind of GPU resource a pod can get on the node: a MIG instance, a shared replica
    (time-slicing or MPS) of a whole GPU or of a MIG instance, or a whole GPU offered next
    to slices (MIG strategy ``mixed``)."""

    resource: str | None = Field(
        None,
        max_length=317,
        pattern=RESOURCE_NAME_PATTERN,
        description="Extended resource pods request for it: nvidia.com/gpu, "
        "nvidia.com/mig-1g.10gb, nvidia.com/gpu.shared; absent when only NVML saw it.",
    )
    mig_profile: str | None = Field(
        None,
        max_length=40,
        pattern=MIG_PROFILE_PATTERN,
        description="MIG profile of the instance (1g.10gb, 1c.2g.20gb, 1g.10gb+me); absent "
        "for a whole GPU.",
    )
    count: int = Field(
        1, ge=1, le=DEVICES_MAX, description="Instances on the node (MIG instances or GPUs)."
    )
    memory_mib: int | None = Field(
        None,
        ge=1,
        le=DEVICE_MEMORY_MAX_MIB,
        description="Memory of one MIG instance in MiB (NVML memorySizeMB).",
    )
    multiprocessors: int | None = Field(
        None, ge=1, le=10_000, description="Streaming multiprocessors of one MIG instance."
    )
    compute_slices: int | None = Field(
        None,
        ge=1,
        le=16,
        description="Compute slices (the N in Ng; sevenths of the GPU on A100/H100/H200).",
    )
    sharing: GpuSharing = Field(
        GpuSharing.NONE,
        description="How pods share one instance: none, time-slicing or mps.",
    )
    replicas: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="Pods that share one instance (device plugin replicas); absent when "
        "sharing is known but the replica count is not.",
    )
    bandwidth_threads: int | None = Field(
        None,
        ge=1,
        description="Measured only: threads that read at once to reach bandwidthGBps (the "
        "cores the probing process could use); more cores may reach more.",
    )
    per_core_bandwidth_gbps: float | None = Field(
        None, gt=0, description="Measured only: read bandwidth one thread (one core) reaches."
    )


class DeviceInfo(WireModel):
    """A group of identical GPUs or accelerators on the node."""

    vendor: str = Field(
        max_length=NAME_MAX,
        description="Device vendor, e.g. nvidia, amd, intel, apple, aws, google.",
    )
    product: str = Field(
        max_length=NAME_MAX, description="Product name, e.g. 'NVIDIA A100-SXM4-80GB'."
    )
    count: int = Field(1, ge=1, le=DEVICES_MAX, description="Number of identical devices.")
    memory_mib: int | None = Field(
        None, ge=1, le=DEVICE_MEMORY_MAX_MIB, description="Memory per device in MiB."
    )
    compute_capability: str | None = Field(
        None,
        max_length=16,
        pattern=r"^\d+\.\d+$",
        description="CUDA compute capability, e.g. '8.0'.",
    )
    memory_bandwidth_gbps: float | None = Field(
        None,
        ge=BANDWIDTH_MIN_GBPS,
        le=BANDWIDTH_MAX_GBPS,
        description="Memory bandwidth per device in GB/s.",
    )
    fp16_tflops: float | None = Field(
        None, ge=TFLOPS_MIN, le=TFLOPS_MAX, description="Dense FP16 peak per device, TFLOPS."
    )
    int8_tops: float | None = Field(
        None, ge=TFLOPS_MIN, le=2 * TFLOPS_MAX, description="Dense INT8 peak per device, TOPS."
    )
    sm_count: int | None = Field(
        None, ge=1, le=SM_MAX, description="Streaming multiprocessors per device."
    )
    mig_enabled: bool | None = Field(None, description="Whether MIG mode is enabled.")
    partitions: list[GpuPartition] | None = Field(
        None,
        max_length=64,
        description="GPU resources pods get here when they are not whole GPUs: MIG "
        "instances and shared replicas (whole GPUs are listed too when offered beside "
        "them); absent means whole GPUs only.",
    )


class HardwareProfile(WireModel):
    cpu: CpuInfo = Field(default_factory=CpuInfo, description="CPU of the node.")
    memory: MemoryInfo = Field(default_factory=MemoryInfo, description="System memory.")
    gpus: list[DeviceInfo] = Field(
        default_factory=list,
        max_length=DEVICE_GROUPS_MAX,
        description="GPUs, grouped by product.",
    )
    accelerators: list[DeviceInfo] = Field(
        default_factory=list,
        max_length=DEVICE_GROUPS_MAX,
        description="Other accelerators (Apple GPU, Gaudi, Inferentia, TPU), grouped by product.",
    )
    source: str | None = Field(
        None,
        max_length=32,
        description="Where the profile came from: agent, gfd, nfd, capacity, file.",
    )
