"""Hardware profile of one node, as the node agent publishes it.

Everything but identity is optional: the engine copes with partial profiles by
estimating from spec tables and says so in its decision log.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .base import WireModel
from .node_contract import RESOURCE_NAME_PATTERN

MIG_PROFILE_PATTERN = (
    r"^([0-9]{1,2}c\.)?[0-9]{1,2}g\.[0-9]{1,4}gb([+-][a-z]+(\.[a-z]+)?(,[a-z]+(\.[a-z]+)?)*)?$"
)
"""A MIG profile as NVIDIA writes it (go-nvlib ``MigProfileInfo.String``): ``1g.10gb``,
``1c.2g.20gb`` (a compute instance of a 2-slice GPU instance), ``1g.10gb+me``."""


class BandwidthSource(StrEnum):
    SPEC = "spec"
    MEASURED = "measured"
    ESTIMATED = "estimated"


class CpuInfo(WireModel):
    vendor: str | None = Field(None, description="CPU vendor, e.g. intel, amd, arm, apple.")
    model: str | None = Field(None, description="CPU model name as reported by the OS.")
    architecture: str | None = Field(None, description="Machine architecture: x86_64, aarch64.")
    physical_cores: int | None = Field(None, ge=1, description="Physical cores on the node.")
    logical_cores: int | None = Field(None, ge=1, description="Hardware threads on the node.")
    usable_cores: float | None = Field(
        None,
        gt=0,
        description="Cores a pod may use: min of the cgroup CPU quota, the cpuset and the cores.",
    )
    base_frequency_mhz: float | None = Field(None, gt=0, description="Base clock in MHz.")
    max_frequency_mhz: float | None = Field(None, gt=0, description="Maximum boost clock in MHz.")
    isa: list[str] = Field(
        default_factory=list,
        description="ISA features relevant to inference kernels (avx2, avx512_vnni, amx_int8, "
        "neon, asimddp, sve, i8mm, ...), lower case.",
    )
    sockets: int | None = Field(None, ge=1, description="CPU sockets.")
    numa_nodes: int | None = Field(None, ge=1, description="NUMA nodes.")


class MemoryInfo(WireModel):
    total_mib: int | None = Field(None, ge=1, description="Total system memory in MiB.")
    bandwidth_gbps: float | None = Field(
        None, gt=0, description="Theoretical (spec) or measured system memory bandwidth in GB/s."
    )
    bandwidth_source: BandwidthSource | None = Field(
        None, description="Where bandwidthGBps comes from: spec, measured or estimated."
    )
    bandwidth_rule: str | None = Field(
        None, description="How the bandwidth was obtained (table entry, probe, estimate rule)."
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
        1, ge=1, le=100_000, description="Instances on the node (MIG instances or GPUs)."
    )
    memory_mib: int | None = Field(
        None, ge=1, description="Memory of one MIG instance in MiB (NVML memorySizeMB)."
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


class DeviceInfo(WireModel):
    """A group of identical GPUs or accelerators on the node."""

    vendor: str = Field(description="Device vendor, e.g. nvidia, amd, intel, apple, aws, google.")
    product: str = Field(description="Product name, e.g. 'NVIDIA A100-SXM4-80GB'.")
    count: int = Field(1, ge=1, description="Number of identical devices.")
    memory_mib: int | None = Field(None, ge=1, description="Memory per device in MiB.")
    compute_capability: str | None = Field(
        None, pattern=r"^\d+\.\d+$", description="CUDA compute capability, e.g. '8.0'."
    )
    memory_bandwidth_gbps: float | None = Field(
        None, gt=0, description="Memory bandwidth per device in GB/s."
    )
    fp16_tflops: float | None = Field(None, gt=0, description="Dense FP16 peak per device, TFLOPS.")
    int8_tops: float | None = Field(None, gt=0, description="Dense INT8 peak per device, TOPS.")
    sm_count: int | None = Field(None, ge=1, description="Streaming multiprocessors per device.")
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
    gpus: list[DeviceInfo] = Field(default_factory=list, description="GPUs, grouped by product.")
    accelerators: list[DeviceInfo] = Field(
        default_factory=list,
        description="Other accelerators (Apple GPU, Gaudi, Inferentia, TPU), grouped by product.",
    )
    source: str | None = Field(
        None,
        description="Where the profile came from: agent, gfd, nfd, capacity, file.",
    )
