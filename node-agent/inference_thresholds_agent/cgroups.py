"""CPU limits of the calling process's cgroup: quota (v2 ``cpu.max``, v1 CFS) and cpuset.

This is the figure container-unaware tools get wrong: ``os.cpu_count()`` inside a pod
limited to 2.5 CPUs on a 64-core node says 64. Limits are hierarchical, so the
quota is the minimum over the process's cgroup and its ancestors that are visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inference_thresholds.bounds import clip

from .sources import HostFiles, parse_cpu_list

CGROUP_MOUNT = "/sys/fs/cgroup"
# cgroup v1 controller directories, as systemd and Docker name them.
_V1_CPU_DIRS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
_V1_CPUSET_DIRS = ("cpuset",)


@dataclass
class CgroupCpu:
    version: int | None = None
    quota_cores: float | None = None  # None = unlimited or unknown
    cpuset: set[int] | None = None
    memory_limit_bytes: int | None = None
    detail: list[str] = field(default_factory=list)


def _own_paths(files: HostFiles) -> dict[str, str]:
    """Controller -> cgroup path from /proc/self/cgroup ('' key for the v2 unified entry)."""
    paths: dict[str, str] = {}
    for line in (files.read_text("/proc/self/cgroup") or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _ancestry(files: HostFiles, mount: str, path: str) -> list[str]:
    """Directories from the process's cgroup up to the mount root, deepest first.

    With a cgroup namespace (the usual pod setup) /proc/self/cgroup says '/' and the
    pod's own cgroup *is* the mount root; when the recorded path does not exist under
    the mount (no namespace, host cgroupfs not mounted) only the root is consulted.
    """
    parts = [p for p in path.strip("/").split("/") if p and p != ".."]
    dirs = []
    while parts:
        candidate = f"{mount}/{'/'.join(parts)}"
        if files.is_dir(candidate):
            dirs.append(candidate)
        parts.pop()
    dirs.append(mount)
    return dirs


def _v2_quota(files: HostFiles, dirs: list[str], out: CgroupCpu) -> None:
    for directory in dirs:
        text = files.read_first_line(f"{directory}/cpu.max")
        if not text:
            continue
        fields = text.split()
        if fields[0] == "max" or len(fields) < 1:
            continue
        try:
            quota = _counter(fields[0])
            period = _counter(fields[1]) if len(fields) > 1 else 100000
        except ValueError:
            out.detail.append(f"{directory}/cpu.max unparsable: {clip(text, 60)!r}")
            continue
        if quota > 0 and period > 0:
            cores = quota / period
            out.detail.append(f"{directory}/cpu.max {quota} {period} = {cores:g} cores")
            out.quota_cores = cores if out.quota_cores is None else min(out.quota_cores, cores)


def _v1_quota(files: HostFiles, dirs: list[str], out: CgroupCpu) -> None:
    for directory in dirs:
        quota = files.read_int(f"{directory}/cpu.cfs_quota_us")
        period = files.read_int(f"{directory}/cpu.cfs_period_us")
        if quota is None or period is None or quota <= 0 or period <= 0:
            continue  # -1 means no limit at this level
        cores = quota / period
        out.detail.append(f"{directory}/cpu.cfs_quota_us {quota} / {period} = {cores:g} cores")
        out.quota_cores = cores if out.quota_cores is None else min(out.quota_cores, cores)


def _memory_limit(files: HostFiles, dirs: list[str], names: tuple[str, ...]) -> int | None:
    limit: int | None = None
    for directory in dirs:
        for name in names:
            text = files.read_first_line(f"{directory}/{name}")
            if not text or text == "max":
                continue
            try:
                value = _counter(text)
            except ValueError:
                continue
            # v1 reports "unlimited" as a page-rounded 2^63-1.
            if 0 < value < 2**62:
                limit = value if limit is None else min(limit, value)
    return limit


def _counter(text: str) -> int:
    """A cgroup number: at most 20 digits (64-bit), else ValueError like any non-number."""
    if len(text) > 20:
        raise ValueError(text[:40])
    return int(text)


def read_cgroup_cpu(files: HostFiles) -> CgroupCpu:
    """The CPU quota and cpuset that apply to the process whose /proc/self is read."""
    out = CgroupCpu()
    own = _own_paths(files)
    if files.exists(f"{CGROUP_MOUNT}/cgroup.controllers"):
        out.version = 2
        dirs = _ancestry(files, CGROUP_MOUNT, own.get("", "/"))
        _v2_quota(files, dirs, out)
        for directory in dirs:  # the deepest effective cpuset already reflects ancestors
            cpus = parse_cpu_list(files.read_first_line(f"{directory}/cpuset.cpus.effective"))
            if cpus:
                out.cpuset = cpus
                out.detail.append(f"{directory}/cpuset.cpus.effective: {len(cpus)} CPUs")
                break
        out.memory_limit_bytes = _memory_limit(files, dirs, ("memory.max",))
        return out

    cpu_mount = next(
        (f"{CGROUP_MOUNT}/{d}" for d in _V1_CPU_DIRS if files.is_dir(f"{CGROUP_MOUNT}/{d}")), None
    )
    cpuset_mount = next(
        (f"{CGROUP_MOUNT}/{d}" for d in _V1_CPUSET_DIRS if files.is_dir(f"{CGROUP_MOUNT}/{d}")),
        None,
    )
    if cpu_mount is None and cpuset_mount is None:
        out.detail.append("no cgroup filesystem found: no container CPU limit applied")
        return out
    out.version = 1
    if cpu_mount is not None:
        _v1_quota(files, _ancestry(files, cpu_mount, own.get("cpu", "/")), out)
    if cpuset_mount is not None:
        for directory in _ancestry(files, cpuset_mount, own.get("cpuset", "/")):
            cpus = parse_cpu_list(
                files.read_first_line(f"{directory}/cpuset.effective_cpus")
                or files.read_first_line(f"{directory}/cpuset.cpus")
            )
            if cpus:
                out.cpuset = cpus
                out.detail.append(f"{directory} cpuset: {len(cpus)} CPUs")
                break
    if files.is_dir(f"{CGROUP_MOUNT}/memory"):
        dirs = _ancestry(files, f"{CGROUP_MOUNT}/memory", own.get("memory", "/"))
        out.memory_limit_bytes = _memory_limit(files, dirs, ("memory.limit_in_bytes",))
    return out
