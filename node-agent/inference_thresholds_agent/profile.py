"""One detection pass: files + NVML -> ``inference_thresholds.api.HardwareProfile``."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from inference_thresholds.api import CpuInfo, HardwareProfile, MemoryInfo

from .cgroups import read_cgroup_cpu
from .cpu import read_cpu
from .memory import MemoryFacts, read_memory
from .nvidia import (
    GpuState,
    NvmlBackend,
    PynvmlBackend,
    RecordedNvml,
    detect_mps,
    detect_nvidia,
)
from .pci import scan_pci
from .profile_bounds import fit_profile
from .sources import HostFiles

NVML_RECORDING = "nvml.json"  # under --root: an NVML recording replayed instead of the driver


class Scope(StrEnum):
    # "process": the limits of the process running detection (a pod running `detect`).
    # "node": what the node offers; the agent's own tiny CPU limit must not count.
    PROCESS = "process"
    NODE = "node"


@dataclass
class Detection:
    profile: HardwareProfile
    gpu_state: GpuState
    notes: list[str] = field(default_factory=list)
    memory_limit_mib: int | None = None
    duration_s: float = 0.0


def default_nvml(root: str | os.PathLike[str]) -> NvmlBackend:
    """A snapshot's recording when ``root/nvml.json`` exists, else the live driver.

    Snapshots written by ``detect --record`` always carry nvml.json, so a host mount
    such as ``--root /host`` in the DaemonSet talks to the real driver.
    """
    recording = Path(root) / NVML_RECORDING
    if recording.is_file():
        return RecordedNvml.load(recording)
    return PynvmlBackend()


class Detector:
    """Repeatable detection; a bandwidth probe runs once and its figure is reused."""

    def __init__(
        self,
        root: str | os.PathLike[str] = "/",
        *,
        probe_bandwidth: bool = False,
        nvml: NvmlBackend | None = None,
        scope: Scope = Scope.PROCESS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.files = HostFiles(root)
        # An MPS client's environment says something only about this process.
        self.env: Mapping[str, str] = (
            env if env is not None else os.environ if scope is Scope.PROCESS else {}
        )
        self.probe_bandwidth = probe_bandwidth
        self.nvml = nvml if nvml is not None else default_nvml(root)
        self.scope = scope
        self._measured: MemoryFacts | None = None

    def run(self) -> Detection:
        started = time.perf_counter()
        notes: list[str] = []
        cpu = read_cpu(self.files)
        usable: float | None = float(cpu.logical_cores) if cpu.logical_cores else None
        memory_limit_mib = None
        if self.scope is Scope.PROCESS:
            limits = read_cgroup_cpu(self.files)
            notes.extend(limits.detail)
            if limits.cpuset and usable is not None:
                usable = min(usable, float(len(limits.cpuset)))
            if limits.quota_cores is not None:
                usable = limits.quota_cores if usable is None else min(usable, limits.quota_cores)
            if limits.memory_limit_bytes:
                memory_limit_mib = limits.memory_limit_bytes // (1024 * 1024)

        probe_now = self.probe_bandwidth and self._measured is None
        memory = read_memory(
            self.files,
            cpu,
            probe=probe_now,
            probe_threads=max(1, int(usable)) if usable else None,
        )
        if probe_now:
            self._measured = memory
        elif self._measured is not None:
            memory = MemoryFacts(
                memory.total_mib,
                self._measured.bandwidth_gbps,
                self._measured.source,
                self._measured.rule,
            )
        if memory.rule:
            notes.append(f"memory bandwidth: {memory.rule}")

        pci = scan_pci(self.files)
        nvidia = detect_nvidia(self.nvml, pci.nvidia_gpus, detect_mps(self.files, self.env))
        notes.extend(nvidia.notes)

        # Unchecked here; fit_profile checks every value against the model's bounds once.
        raw = HardwareProfile.model_construct(
            cpu=CpuInfo.model_construct(
                vendor=cpu.vendor,
                model=cpu.model,
                architecture=cpu.architecture,
                physical_cores=cpu.physical_cores,
                logical_cores=cpu.logical_cores,
                usable_cores=round(usable, 2) if usable else None,
                base_frequency_mhz=cpu.base_frequency_mhz,
                max_frequency_mhz=cpu.max_frequency_mhz,
                isa=cpu.isa,
                sockets=cpu.sockets,
                numa_nodes=cpu.numa_nodes,
            ),
            memory=MemoryInfo.model_construct(
                total_mib=memory.total_mib,
                bandwidth_gbps=memory.bandwidth_gbps,
                bandwidth_source=memory.source,
                bandwidth_rule=memory.rule,
            ),
            gpus=nvidia.devices + pci.gpus,
            accelerators=pci.accelerators,
            source="agent",
        )
        profile, dropped = fit_profile(raw)
        notes.extend(dropped)
        return Detection(
            profile=profile,
            gpu_state=nvidia.state,
            notes=notes,
            memory_limit_mib=memory_limit_mib,
            duration_s=time.perf_counter() - started,
        )


def detect_profile(
    root: str | os.PathLike[str] = "/", probe_bandwidth: bool = False
) -> HardwareProfile:
    """This machine's (or a snapshot root's) hardware profile, as a pod would see it."""
    return Detector(root, probe_bandwidth=probe_bandwidth).run().profile
