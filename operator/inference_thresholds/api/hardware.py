"""Hardware profile of one node, as the node agent publishes it.

Everything but identity is optional: the engine copes with partial profiles by
estimating from spec tables and says so in its decision log.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .base import WireModel


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
