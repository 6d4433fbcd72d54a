"""Record the files detection reads (and NVML's answers) into a fixture directory.

``inference-thresholds detect --record DIR`` runs this, so a machine at hand (one with
a GPU, an Arm server, a limited pod) can contribute a fixture that replays exactly:
``detect --root DIR`` then gives the same profile without the hardware.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from .cgroups import CGROUP_MOUNT
from .memory import DMI_ENTRIES, ProbeResult
from .nvidia import MPS_ROOT, NvmlBackend, NvmlError, mps_started_resources
from .pci import PCI_DEVICES
from .sources import HostFiles

_FILES = (
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/self/cgroup",
    "/sys/devices/system/cpu/online",
    "/sys/devices/system/cpu/possible",
    "/sys/devices/system/node/online",
)
_CPU_FILES = (
    "topology/core_id",
    "topology/physical_package_id",
    "topology/thread_siblings_list",
    "cpufreq/cpuinfo_max_freq",
    "cpufreq/base_frequency",
    "cpufreq/amd_pstate_nominal_freq",
)
_CGROUP_FILES = (
    "cgroup.controllers",
    "cpu.max",
    "cpuset.cpus.effective",
    "memory.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "cpuset.cpus",
    "cpuset.effective_cpus",
    "memory.limit_in_bytes",
)


def _copy(files: HostFiles, dest: Path, host_path: str) -> None:
    data = files.read_bytes(host_path)
    if data is None:
        return
    target = dest / host_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def record_nvml(backend: NvmlBackend) -> dict[str, Any]:
    """NVML's answers in the RecordedNvml format; ``libraryMissing`` when there is none."""
    try:
        backend.init()
    except NvmlError as exc:
        return {
            "libraryMissing": exc.library_missing,
            "initErrors": 0 if exc.library_missing else 1,
        }
    try:
        devices: list[dict[str, Any]] = []
        for index in range(backend.device_count()):
            r = backend.device(index)
            devices.append(
                {
                    "name": r.name,
                    "memoryTotalBytes": r.memory_total_bytes,
                    "maxMemoryClockMHz": r.max_memory_clock_mhz,
                    "memoryBusWidthBits": r.memory_bus_width_bits,
                    "cudaComputeCapability": list(r.cuda_compute_capability)
                    if r.cuda_compute_capability
                    else None,
                    "migMode": [r.mig_mode_current, r.mig_mode_current]
                    if r.mig_mode_current is not None
                    else None,
                    "multiprocessorCount": r.multiprocessor_count,
                    "numGpuCores": r.num_gpu_cores,
                    "computeMode": r.compute_mode,
                }
            )
            if r.mig_devices is not None:
                devices[-1]["migDevices"] = [
                    {
                        "name": m.name,
                        "memorySizeMB": m.memory_mib,
                        "multiprocessorCount": m.multiprocessor_count,
                        "gpuInstanceSliceCount": m.gpu_instance_slices,
                        "computeInstanceSliceCount": m.compute_instance_slices,
                    }
                    for m in r.mig_devices
                ]
        return {"driverVersion": backend.driver_version(), "devices": devices}
    finally:
        backend.shutdown()


def record_host(
    dest: str | Path,
    root: str | Path = "/",
    nvml: NvmlBackend | None = None,
    probe: ProbeResult | None = None,
) -> Path:
    """Copy what detection reads under ``root`` into ``dest``; returns ``dest``.

    ``probe``: the bandwidth probe's result, replayed by ``detect --root DEST``.
    """
    files = HostFiles(root)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for host_path in _FILES:
        _copy(files, out, host_path)
    for name in files.list_dir("/sys/devices/system/cpu"):
        if re.fullmatch(r"cpu\d+", name):
            for rel in _CPU_FILES:
                _copy(files, out, f"/sys/devices/system/cpu/{name}/{rel}")
    for policy in files.list_dir("/sys/devices/system/cpu/cpufreq"):
        _copy(files, out, f"/sys/devices/system/cpu/cpufreq/{policy}/cpuinfo_max_freq")
    for name in files.list_dir("/sys/devices/system/node"):
        if re.fullmatch(r"node\d+", name):
            _copy(files, out, f"/sys/devices/system/node/{name}/cpulist")
    # The cgroup files of the mount root and of every controller directory below it on
    # the path /proc/self/cgroup names (v1 has one hierarchy per controller).
    own = [
        line.split(":", 2)[2]
        for line in (files.read_text("/proc/self/cgroup") or "").splitlines()
        if line.count(":") >= 2
    ]
    mounts = [CGROUP_MOUNT] + [
        f"{CGROUP_MOUNT}/{d}"
        for d in files.list_dir(CGROUP_MOUNT)
        if files.is_dir(f"{CGROUP_MOUNT}/{d}")
    ]
    for mount in mounts:
        for path in {"/", *own}:
            directory = mount + (path.rstrip("/") if path != "/" else "")
            for name in _CGROUP_FILES:
                _copy(files, out, f"{directory}/{name}")
    for address in files.list_dir(PCI_DEVICES):
        for name in ("vendor", "device", "class"):
            _copy(files, out, f"{PCI_DEVICES}/{address}/{name}")
    for entry in files.list_dir(DMI_ENTRIES):
        if entry.startswith("17-"):
            _copy(files, out, f"{DMI_ENTRIES}/{entry}/raw")
    for index in ("index0", "index1", "index2", "index3", "index4"):
        _copy(files, out, f"/sys/devices/system/cpu/cpu0/cache/{index}/size")
    for resource in mps_started_resources(files):
        _copy(files, out, f"{MPS_ROOT}/{resource}/.started")
    if nvml is not None:
        (out / "nvml.json").write_text(json.dumps(record_nvml(nvml), indent=2) + "\n")
    if probe is not None:
        (out / "bandwidth-probe.json").write_text(json.dumps(probe.wire(), indent=2) + "\n")
    return out


def remove_recording(dest: str | Path) -> None:
    shutil.rmtree(dest, ignore_errors=True)
