"""NVIDIA GPUs through NVML, behind a narrow protocol so tests replay recordings.

MIG instances are read through NVML's MIG API: ``nvmlDeviceGetMaxMigDeviceCount`` on the
parent, ``nvmlDeviceGetMigDeviceHandleByIndex`` for each index that holds an instance, then
``nvmlDeviceGetName`` (``... MIG 1g.10gb``) and ``nvmlDeviceGetAttributes`` (SMs, slices,
memory) on the instance. Sharing by time-slicing is configured in the device plugin
(cluster side: the operator reads it from GPU Feature Discovery's labels); MPS is seen here
when this process is an MPS client or the control daemon's state is visible.

NVML states map to what the agent does:
- library not found and no NVIDIA PCI device: no GPUs (a CPU node), nothing to retry;
- library missing while NVIDIA PCI devices exist, or init failing (driver still
  loading): ``pending`` -- CPU/memory labels are still published and GPU detection is
  retried with backoff; the process never exits over it (GFD #71/#75 crash loops).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from inference_thresholds.api import DeviceInfo, GpuPartition, GpuSharing
from inference_thresholds.api.hardware import NAME_MAX
from inference_thresholds.bounds import printable
from inference_thresholds.engine.specs import lookup_gpu

from .sources import HostFiles

MIB = 1024 * 1024
# NVML-derived bandwidth within this ratio of the table is trusted as the device's own.
_CROSS_CHECK_TOLERANCE = 0.15
# FP32 cores per SM by compute capability, to turn nvmlDeviceGetNumGpuCores into SMs.
_CORES_PER_SM = {(6, 0): 64, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64}
# Instance profile in a MIG device's NVML name: "NVIDIA A100-SXM4-80GB MIG 1g.10gb".
_MIG_NAME = re.compile(r"\bMIG ((?:\d+c\.)?\d+g\.\d+gb(?:[+-][a-z.,]+)?)")
_MAX_MIG_DEVICES = 64  # NVML reports 7 on A100/H100; a bound against a broken driver
# The NVIDIA device plugin's MPS control daemon (default root /run/nvidia/mps) writes a
# .started file per shared resource; the path holds the resource name.
MPS_ROOT = "/run/nvidia/mps"
NVML_COMPUTEMODE_EXCLUSIVE_PROCESS = 3


class GpuState(StrEnum):
    OK = "ok"
    ABSENT = "absent"
    PENDING = "pending"


class NvmlError(Exception):
    """An NVML failure; ``library_missing`` tells 'no driver here' from 'driver not ready'."""

    def __init__(self, message: str, *, library_missing: bool = False) -> None:
        super().__init__(message)
        self.library_missing = library_missing


@dataclass
class NvmlMigReading:
    """One MIG device (a compute instance in a GPU instance) as NVML describes it."""

    name: str | None = None
    memory_mib: int | None = None  # nvmlDeviceAttributes.memorySizeMB (MiB)
    multiprocessor_count: int | None = None
    gpu_instance_slices: int | None = None
    compute_instance_slices: int | None = None


@dataclass
class NvmlDeviceReading:
    """What NVML says about one device; None where the call is unsupported."""

    name: str
    memory_total_bytes: int | None = None
    max_memory_clock_mhz: int | None = None
    memory_bus_width_bits: int | None = None
    cuda_compute_capability: tuple[int, int] | None = None
    mig_mode_current: int | None = None
    multiprocessor_count: int | None = None
    num_gpu_cores: int | None = None
    # None: MIG off or not asked; [] : MIG on with no instance created yet.
    mig_devices: list[NvmlMigReading] | None = None
    compute_mode: int | None = None


class NvmlBackend(Protocol):
    def init(self) -> None: ...
    def shutdown(self) -> None: ...
    def driver_version(self) -> str | None: ...
    def device_count(self) -> int: ...
    def device(self, index: int) -> NvmlDeviceReading: ...


T = TypeVar("T")


class PynvmlBackend:
    """The real NVML, via nvidia-ml-py's ``pynvml`` (imported on first use)."""

    def __init__(self) -> None:
        self._nvml: Any = None

    def _module(self) -> Any:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as exc:  # the agent extra is not installed
                raise NvmlError(f"pynvml not importable: {exc}", library_missing=True) from exc
            self._nvml = pynvml
        return self._nvml

    def init(self) -> None:
        nvml = self._module()
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            missing = getattr(exc, "value", None) == nvml.NVML_ERROR_LIBRARY_NOT_FOUND
            raise NvmlError(f"nvmlInit: {exc}", library_missing=missing) from exc

    def shutdown(self) -> None:
        nvml = self._module()
        with contextlib.suppress(nvml.NVMLError):
            nvml.nvmlShutdown()

    def _optional(self, call: Callable[[], T]) -> T | None:
        try:
            return call()
        except self._module().NVMLError:
            return None

    def driver_version(self) -> str | None:
        nvml = self._module()
        value = self._optional(nvml.nvmlSystemGetDriverVersion)
        return value.decode(errors="replace") if isinstance(value, bytes) else value

    def device_count(self) -> int:
        nvml = self._module()
        try:
            return int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise NvmlError(f"nvmlDeviceGetCount: {exc}") from exc

    def device(self, index: int) -> NvmlDeviceReading:
        nvml = self._module()
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            name = nvml.nvmlDeviceGetName(handle)
        except nvml.NVMLError as exc:
            raise NvmlError(f"device {index}: {exc}") from exc
        memory = self._optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        mig = self._optional(lambda: nvml.nvmlDeviceGetMigMode(handle))
        attributes = self._optional(lambda: nvml.nvmlDeviceGetAttributes(handle))
        cc = self._optional(lambda: nvml.nvmlDeviceGetCudaComputeCapability(handle))
        mig_on = mig is not None and int(mig[0]) == 1
        return NvmlDeviceReading(
            name=name.decode(errors="replace") if isinstance(name, bytes) else str(name),
            memory_total_bytes=int(memory.total) if memory is not None else None,
            max_memory_clock_mhz=self._optional(
                lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM))
            ),
            memory_bus_width_bits=self._optional(
                lambda: int(nvml.nvmlDeviceGetMemoryBusWidth(handle))
            ),
            cuda_compute_capability=(int(cc[0]), int(cc[1])) if cc is not None else None,
            mig_mode_current=int(mig[0]) if mig is not None else None,
            multiprocessor_count=(
                int(attributes.multiprocessorCount) if attributes is not None else None
            ),
            num_gpu_cores=self._optional(lambda: int(nvml.nvmlDeviceGetNumGpuCores(handle))),
            mig_devices=self._mig_devices(handle) if mig_on else None,
            compute_mode=self._optional(lambda: int(nvml.nvmlDeviceGetComputeMode(handle))),
        )

    def _mig_devices(self, parent: Any) -> list[NvmlMigReading] | None:
        """The MIG devices that exist: indices without an instance answer NOT_FOUND.
        None when the driver cannot say (not: no instance)."""
        nvml = self._module()
        slots = self._optional(lambda: int(nvml.nvmlDeviceGetMaxMigDeviceCount(parent)))
        if slots is None:
            return None
        found: list[NvmlMigReading] = []
        for index in range(min(slots, _MAX_MIG_DEVICES)):
            handle = self._optional(lambda: nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent, index))  # noqa: B023
            if handle is None:
                continue
            name = self._optional(lambda: nvml.nvmlDeviceGetName(handle))  # noqa: B023
            attributes = self._optional(lambda: nvml.nvmlDeviceGetAttributes(handle))  # noqa: B023
            found.append(
                NvmlMigReading(
                    name=name.decode() if isinstance(name, bytes) else name,
                    memory_mib=int(attributes.memorySizeMB) if attributes else None,
                    multiprocessor_count=int(attributes.multiprocessorCount)
                    if attributes
                    else None,
                    gpu_instance_slices=int(attributes.gpuInstanceSliceCount)
                    if attributes
                    else None,
                    compute_instance_slices=int(attributes.computeInstanceSliceCount)
                    if attributes
                    else None,
                )
            )
        return found


class NoNvml:
    """A host without the NVIDIA driver (tests on synthetic roots use it)."""

    def init(self) -> None:
        raise NvmlError("no NVIDIA driver (NoNvml)", library_missing=True)

    def shutdown(self) -> None:
        pass

    def driver_version(self) -> str | None:
        return None

    def device_count(self) -> int:
        return 0

    def device(self, index: int) -> NvmlDeviceReading:
        raise NvmlError(f"device {index}: no NVIDIA driver")


@dataclass
class RecordedNvml:
    """Replays a JSON recording of NVML answers (tests/fixtures/hosts/*/nvml.json).

    ``initErrors``: how many init() calls fail before NVML "becomes ready" (a driver
    container still starting); ``libraryMissing``: init always fails as if no driver.
    Per device, ``migDevices`` lists the MIG devices (``name``, ``memorySizeMB``,
    ``multiprocessorCount``, ``gpuInstanceSliceCount``, ``computeInstanceSliceCount``:
    the fields of nvmlDeviceAttributes_t) and ``computeMode`` nvmlDeviceGetComputeMode.
    """

    data: dict[str, Any]
    init_calls: int = 0
    shutdowns: int = 0

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RecordedNvml:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def init(self) -> None:
        self.init_calls += 1
        if self.data.get("libraryMissing"):
            raise NvmlError("NVML Shared Library Not Found (recorded)", library_missing=True)
        if self.init_calls <= int(self.data.get("initErrors", 0)):
            raise NvmlError("nvmlInit: Driver Not Loaded (recorded)")

    def shutdown(self) -> None:
        self.shutdowns += 1

    def driver_version(self) -> str | None:
        value = self.data.get("driverVersion")
        return str(value) if value is not None else None

    def device_count(self) -> int:
        return len(self.data.get("devices", []))

    def device(self, index: int) -> NvmlDeviceReading:
        raw = self.data["devices"][index]
        cc = raw.get("cudaComputeCapability")
        mig = raw.get("migMode")
        return NvmlDeviceReading(
            name=raw["name"],
            memory_total_bytes=raw.get("memoryTotalBytes"),
            max_memory_clock_mhz=raw.get("maxMemoryClockMHz"),
            memory_bus_width_bits=raw.get("memoryBusWidthBits"),
            cuda_compute_capability=(int(cc[0]), int(cc[1])) if cc else None,
            mig_mode_current=int(mig[0]) if mig else None,
            multiprocessor_count=raw.get("multiprocessorCount"),
            num_gpu_cores=raw.get("numGpuCores"),
            mig_devices=[
                NvmlMigReading(
                    name=m.get("name"),
                    memory_mib=m.get("memorySizeMB"),
                    multiprocessor_count=m.get("multiprocessorCount"),
                    gpu_instance_slices=m.get("gpuInstanceSliceCount"),
                    compute_instance_slices=m.get("computeInstanceSliceCount"),
                )
                for m in raw["migDevices"]
            ]
            if "migDevices" in raw
            else None,
            compute_mode=raw.get("computeMode"),
        )


@dataclass
class GpuDetection:
    state: GpuState
    devices: list[DeviceInfo] = field(default_factory=list)
    driver_version: str | None = None
    notes: list[str] = field(default_factory=list)


# NVML answers in C integers; a clock or bus width beyond these is a broken reading.
_CLOCK_MAX_MHZ = 100_000
_BUS_MAX_BITS = 1 << 16


def nvml_bandwidth_gbps(reading: NvmlDeviceReading) -> float | None:
    """max memory clock x bus width x 2 (double data rate) / 8 bits, in GB/s."""
    if not reading.max_memory_clock_mhz or not reading.memory_bus_width_bits:
        return None
    if not (
        0 < reading.max_memory_clock_mhz <= _CLOCK_MAX_MHZ
        and 0 < reading.memory_bus_width_bits <= _BUS_MAX_BITS
    ):
        return None
    return reading.max_memory_clock_mhz * reading.memory_bus_width_bits * 2 / 8 / 1000


def sm_count(reading: NvmlDeviceReading) -> int | None:
    if reading.multiprocessor_count:
        return reading.multiprocessor_count
    if reading.num_gpu_cores and reading.cuda_compute_capability:
        per_sm = _CORES_PER_SM.get(reading.cuda_compute_capability, 128)
        return reading.num_gpu_cores // per_sm or None
    return None


def mig_memory_gb(device_bytes: int, instance_mib: int) -> int:
    """The GB in a MIG profile name, as go-nvlib (NVIDIA's device library) computes it: the
    instance's share of memory rounded up to eighths, times the device's GiB rounded up."""
    eighths = math.ceil(instance_mib * MIB / device_bytes * 8 - 1e-9) / 8
    return math.floor(eighths * math.ceil(device_bytes / 2**30) + 0.5)  # Go's math.Round


def mig_profile(mig: NvmlMigReading, device_bytes: int | None) -> str | None:
    """'1g.10gb' from the instance's NVML name, else from its attributes like go-nvlib."""
    match = _MIG_NAME.search(mig.name or "")
    if match:
        return match.group(1)
    g, c = mig.gpu_instance_slices, mig.compute_instance_slices
    if not g or not mig.memory_mib or not device_bytes:
        return None
    gb = mig_memory_gb(device_bytes, mig.memory_mib)
    return f"{g}g.{gb}gb" if not c or c == g else f"{c}c.{g}g.{gb}gb"


def mig_partitions(reading: NvmlDeviceReading, notes: list[str]) -> list[GpuPartition] | None:
    """Identical MIG devices of one GPU as partitions with a count; None when MIG is off."""
    if reading.mig_devices is None:
        return None
    if not reading.mig_devices:
        notes.append(f"{reading.name}: MIG enabled but no MIG device created: nothing to run on")
        return []
    grouped: dict[tuple[object, ...], GpuPartition] = {}
    for mig in reading.mig_devices:
        profile = mig_profile(mig, reading.memory_total_bytes)
        if profile is None:
            notes.append(f"{reading.name}: a MIG device without profile or attributes: skipped")
            continue
        part = GpuPartition(
            mig_profile=profile,
            memory_mib=mig.memory_mib,
            multiprocessors=mig.multiprocessor_count,
            compute_slices=mig.gpu_instance_slices,
        )
        key = tuple(part.model_dump().values())
        if key in grouped:
            grouped[key].count += 1
        else:
            grouped[key] = part
    return sorted(grouped.values(), key=lambda p: (p.memory_mib or 0, p.mig_profile or ""))


def describe(reading: NvmlDeviceReading, notes: list[str]) -> DeviceInfo:
    """The device as NVML describes it; unchecked (``profile_bounds.fit_profile`` checks)."""
    reading = replace(reading, name=printable(reading.name, NAME_MAX) or "NVIDIA GPU")
    spec = lookup_gpu(reading.name)
    derived = nvml_bandwidth_gbps(reading)
    bandwidth = derived
    if derived is not None and spec is not None:
        ratio = derived / spec.memory_bandwidth_gbps
        if abs(ratio - 1) > _CROSS_CHECK_TOLERANCE:
            notes.append(
                f"{reading.name}: NVML clock x bus width gives {derived:.0f} GB/s, table "
                f"{spec.key} says {spec.memory_bandwidth_gbps:g}; using the table (this memory "
                "type moves a different number of transfers per clock)"
            )
            bandwidth = spec.memory_bandwidth_gbps
    elif derived is None and spec is not None:
        bandwidth = spec.memory_bandwidth_gbps
        notes.append(f"{reading.name}: NVML gave no memory clock/bus width; table {spec.key}")
    if spec is None:
        notes.append(f"{reading.name}: not in the GPU table; no FP16/INT8 peak published")
    cc = reading.cuda_compute_capability
    return DeviceInfo.model_construct(
        vendor="nvidia",
        product=reading.name,
        count=1,
        memory_mib=reading.memory_total_bytes // MIB if reading.memory_total_bytes else None,
        compute_capability=f"{cc[0]}.{cc[1]}" if cc else None,
        memory_bandwidth_gbps=round(bandwidth, 1) if bandwidth else None,
        fp16_tflops=spec.fp16_tflops if spec else None,
        int8_tops=spec.int8_tops if spec else None,
        sm_count=sm_count(reading),
        mig_enabled=bool(reading.mig_mode_current)
        if reading.mig_mode_current is not None
        else None,
        partitions=mig_partitions(reading, notes),
    )


def group_devices(devices: list[DeviceInfo]) -> list[DeviceInfo]:
    """Identical devices -> one entry with a count; ordered by count, then product.

    GPUs partitioned alike are identical: their partition counts add up (8 GPUs with seven
    1g.10gb instances each -> one group of 8 with 56 instances).
    """
    groups: dict[str, DeviceInfo] = {}
    for device in devices:
        key = json.dumps(device.model_dump(mode="json", exclude={"count"}), sort_keys=True)
        if key in groups:
            group = groups[key]
            group.count += device.count
            for mine, theirs in zip(group.partitions or [], device.partitions or [], strict=True):
                mine.count += theirs.count
        else:
            groups[key] = device.model_copy(deep=True)
    return sorted(groups.values(), key=lambda d: (-d.count, d.product))


@dataclass(frozen=True)
class MpsSharing:
    """Evidence that GPUs here are shared through MPS, and the replica count if known."""

    evidence: str
    replicas: int | None = None


def mps_started_resources(files: HostFiles) -> list[str]:
    """Resources whose MPS control daemon reports started (<root>/<domain>/<name>/.started)."""
    found = []
    for domain in files.list_dir(MPS_ROOT)[:16]:
        for name in files.list_dir(f"{MPS_ROOT}/{domain}")[:16]:
            if files.exists(f"{MPS_ROOT}/{domain}/{name}/.started"):
                found.append(f"{domain}/{name}")
    return found


def detect_mps(files: HostFiles, env: Mapping[str, str]) -> MpsSharing | None:
    """MPS as this process or host can see it: the client environment the device plugin
    gives a container (CUDA_MPS_PIPE_DIRECTORY, optionally CUDA_MPS_ACTIVE_THREAD_PERCENTAGE)
    or the control daemon's .started file under the host's MPS root."""
    if env.get("CUDA_MPS_PIPE_DIRECTORY"):
        replicas = None
        try:
            percentage = float(env.get("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", ""))
        except ValueError:
            percentage = math.nan
        if 0 < percentage <= 100:
            replicas = max(1, round(100 / percentage))
        return MpsSharing("this process is an MPS client (CUDA_MPS_PIPE_DIRECTORY)", replicas)
    started = mps_started_resources(files)
    if started:
        return MpsSharing(f"MPS control daemon started for {', '.join(started)} ({MPS_ROOT})")
    return None


def _apply_mps(devices: list[DeviceInfo], mps: MpsSharing, notes: list[str]) -> None:
    # The device plugin shares every GPU of a node the same way, and MPS not on MIG.
    for device in devices:
        if not device.mig_enabled:
            device.partitions = [
                GpuPartition(count=device.count, sharing=GpuSharing.MPS, replicas=mps.replicas)
            ]
    notes.append(
        f"GPUs shared through MPS: {mps.evidence}"
        + (f", {mps.replicas} clients per GPU" if mps.replicas else ", replica count unknown")
    )


def detect_nvidia(
    backend: NvmlBackend, pci_nvidia_gpus: int, mps: MpsSharing | None = None
) -> GpuDetection:
    """GPUs from NVML; never raises for NVML trouble -- the state says what happened."""
    try:
        backend.init()
    except NvmlError as exc:
        if exc.library_missing and pci_nvidia_gpus == 0:
            return GpuDetection(GpuState.ABSENT, notes=[f"no NVIDIA driver or GPU: {exc}"])
        return GpuDetection(
            GpuState.PENDING,
            notes=[f"NVML not ready ({exc}); {pci_nvidia_gpus} NVIDIA GPU(s) on the PCI bus"],
        )
    try:
        notes: list[str] = []
        count = backend.device_count()
        raw = [backend.device(i) for i in range(count)]
        devices = group_devices([describe(reading, notes) for reading in raw])
        state = GpuState.OK if count or not pci_nvidia_gpus else GpuState.PENDING
        if count < pci_nvidia_gpus:
            notes.append(f"NVML sees {count} of {pci_nvidia_gpus} NVIDIA GPUs on the PCI bus")
        if mps is not None:
            _apply_mps(devices, mps, notes)
        elif any(r.compute_mode == NVML_COMPUTEMODE_EXCLUSIVE_PROCESS for r in raw):
            notes.append(
                "compute mode EXCLUSIVE_PROCESS (an MPS control daemon sets it): the GPUs may "
                "be shared through MPS; nvidia.com/gpu.sharing-strategy on the node tells"
            )
        return GpuDetection(state, devices, backend.driver_version(), notes)
    except NvmlError as exc:
        return GpuDetection(GpuState.PENDING, notes=[f"NVML query failed: {exc}"])
    finally:
        backend.shutdown()
