"""NVIDIA GPUs through NVML, behind a narrow protocol so tests replay recordings.

NVML states map to what the agent does:
- library not found and no NVIDIA PCI device: no GPUs (a CPU node), nothing to retry;
- library missing while NVIDIA PCI devices exist, or init failing (driver still
  loading): ``pending`` -- CPU/memory labels are still published and GPU detection is
  retried with backoff; the process never exits over it (GFD #71/#75 crash loops).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, TypeVar

from inference_thresholds.api import DeviceInfo
from inference_thresholds.api.hardware import NAME_MAX
from inference_thresholds.bounds import printable
from inference_thresholds.engine.specs import lookup_gpu

MIB = 1024 * 1024
# NVML-derived bandwidth within this ratio of the table is trusted as the device's own.
_CROSS_CHECK_TOLERANCE = 0.15
# FP32 cores per SM by compute capability, to turn nvmlDeviceGetNumGpuCores into SMs.
_CORES_PER_SM = {(6, 0): 64, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64}


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
        )


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
    )


def group_devices(devices: list[DeviceInfo]) -> list[DeviceInfo]:
    """Identical devices -> one entry with a count; ordered by count, then product."""
    groups: dict[str, DeviceInfo] = {}
    for device in devices:
        key = json.dumps(device.model_dump(mode="json", exclude={"count"}), sort_keys=True)
        if key in groups:
            groups[key].count += device.count
        else:
            groups[key] = device.model_copy()
    return sorted(groups.values(), key=lambda d: (-d.count, d.product))


def detect_nvidia(backend: NvmlBackend, pci_nvidia_gpus: int) -> GpuDetection:
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
        readings = [describe(backend.device(i), notes) for i in range(count)]
        state = GpuState.OK if count or not pci_nvidia_gpus else GpuState.PENDING
        if count < pci_nvidia_gpus:
            notes.append(f"NVML sees {count} of {pci_nvidia_gpus} NVIDIA GPUs on the PCI bus")
        return GpuDetection(state, group_devices(readings), backend.driver_version(), notes)
    except NvmlError as exc:
        return GpuDetection(GpuState.PENDING, notes=[f"NVML query failed: {exc}"])
    finally:
        backend.shutdown()
