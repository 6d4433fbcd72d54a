"""One detection pass: files + NVML -> ``inference_thresholds.api.HardwareProfile``."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from inference_thresholds.api import BandwidthSource, CpuInfo, HardwareProfile, MemoryInfo

from .cgroups import read_cgroup_cpu
from .cpu import read_cpu
from .memory import (
    BandwidthProbe,
    LiveReadProbe,
    MemoryFacts,
    ProbeMode,
    ProbeResult,
    RecordedProbe,
    probe_limits,
    read_memory,
)
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
PROBE_RECORDING = "bandwidth-probe.json"  # under --root: a recorded bandwidth probe result
_PROBE_MAX_THREADS = 16


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


def default_probe(root: str | os.PathLike[str]) -> BandwidthProbe:
    """A snapshot's recorded probe result, else a live probe of this machine.

    A root carrying an NVML recording is a snapshot of another machine: without a
    recorded probe result it has no measurement (probing here would measure this host).
    """
    recording = Path(root) / PROBE_RECORDING
    if recording.is_file():
        return RecordedProbe.load(recording)
    if (Path(root) / NVML_RECORDING).is_file():
        return RecordedProbe(None)
    return LiveReadProbe()


def _own_rss_bytes() -> int | None:
    # The probing process itself (not the host under --root): its resident memory.
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


class Detector:
    """Repeatable detection; a bandwidth probe runs once and its figure is reused."""

    def __init__(
        self,
        root: str | os.PathLike[str] = "/",
        *,
        probe_bandwidth: ProbeMode | bool = ProbeMode.AUTO,
        nvml: NvmlBackend | None = None,
        probe: BandwidthProbe | None = None,
        scope: Scope = Scope.PROCESS,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.files = HostFiles(root)
        if isinstance(probe_bandwidth, bool):
            probe_bandwidth = ProbeMode.ALWAYS if probe_bandwidth else ProbeMode.NEVER
        self.probe_mode = ProbeMode(probe_bandwidth)
        # An MPS client's environment says something only about this process.
        self.env: Mapping[str, str] = (
            env if env is not None else os.environ if scope is Scope.PROCESS else {}
        )
        self.nvml = nvml if nvml is not None else default_nvml(root)
        self.probe = probe if probe is not None else default_probe(root)
        self.scope = scope
        self._measured: MemoryFacts | None = None
        self._probed = False
        self.probe_result: ProbeResult | None = None

    def run(self) -> Detection:
        started = time.perf_counter()
        notes: list[str] = []
        cpu = read_cpu(self.files)
        usable: float | None = float(cpu.logical_cores) if cpu.logical_cores else None
        memory_limit_mib = None
        # The probe runs in this process: its own cgroup bounds its memory in any scope.
        limits = read_cgroup_cpu(self.files)
        if self.scope is Scope.PROCESS:
            notes.extend(limits.detail)
            if limits.cpuset and usable is not None:
                usable = min(usable, float(len(limits.cpuset)))
                # A pinned cpuset of SMT siblings shares cores: count the cores it covers.
                pinned = cpu.online_cpus is not None and limits.cpuset < cpu.online_cpus
                covered = cpu.physical_cores_in(limits.cpuset) if pinned else None
                if covered is not None and covered < usable:
                    notes.append(
                        f"cpuset {len(limits.cpuset)} CPUs are SMT siblings on {covered} core(s)"
                    )
                    usable = float(covered)
            if limits.quota_cores is not None:
                usable = limits.quota_cores if usable is None else min(usable, limits.quota_cores)
            if limits.memory_limit_bytes:
                memory_limit_mib = limits.memory_limit_bytes // (1024 * 1024)

        probe_now = self.probe_mode is not ProbeMode.NEVER and not self._probed
        threads = max(1, min(_PROBE_MAX_THREADS, int(usable))) if usable else 1
        memory = read_memory(
            self.files,
            cpu,
            probe=self.probe if probe_now else None,
            mode=self.probe_mode if probe_now else ProbeMode.NEVER,
            limits=probe_limits(self.files, threads, limits.memory_limit_bytes, _own_rss_bytes()),
        )
        if probe_now:
            self._probed = True
            if memory.source is BandwidthSource.MEASURED:
                self._measured = memory
                self.probe_result = memory.probe
        elif self._measured is not None:
            memory = replace(self._measured, total_mib=memory.total_mib)
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
                bandwidth_threads=memory.bandwidth_threads,
                per_core_bandwidth_gbps=memory.per_core_bandwidth_gbps,
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
    root: str | os.PathLike[str] = "/", probe_bandwidth: ProbeMode | bool = ProbeMode.AUTO
) -> HardwareProfile:
    """This machine's (or a snapshot root's) hardware profile, as a pod would see it."""
    return Detector(root, probe_bandwidth=probe_bandwidth).run().profile
