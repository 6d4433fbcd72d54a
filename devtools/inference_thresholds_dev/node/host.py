"""What a kubelet + containerd node touches outside its state directory, and the cleanup.

Everything else lives under the node's directory (containerd root/state/sockets, runc
state, network namespaces, kubelet root-dir, pod logs, CNI config). These stay fixed:

- cgroups: the node's pods live under ``/<cgroup root>/kubepods`` in every hierarchy. The
  root is unique per node (``cgroup_root_name``), so nodes never share one; removed at
  teardown once its processes are gone.
- ``FIXED_PATHS``: directories compiled into the kubelet, containerd and libcni, created on
  demand. A node records which of them it created and removes them at teardown (when empty)
  unless another kubelet still runs.
- ``/var/log/containers``: the kubelet's per-container log symlinks (named after pod,
  namespace and container id): the node's own links (those pointing into its pod-log
  directory) are removed; the directory goes with the other fixed paths.
- mounts: the kubelet's volume mounts and containerd's rootfs/shm mounts are all below the
  node's directory; whatever is still mounted there at teardown is unmounted.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

CGROUP_PREFIX = "inference-thresholds-node-"
# Compiled into the kubelet, containerd or libcni (no flag moves them); children first.
FIXED_PATHS = (
    Path("/var/lib/kubelet/device-plugins"),  # kubelet: device-manager socket + checkpoint
    Path("/var/lib/kubelet"),
    Path("/var/log/containers"),  # kubelet: per-container log symlinks
    Path("/run/containerd/s"),  # containerd: shim sockets (hashed per containerd address)
    Path("/run/containerd"),
    Path("/var/lib/cni/results"),  # libcni: per-container result cache
    Path("/var/lib/cni"),
)
CONTAINER_LOG_LINKS = Path("/var/log/containers")
_MNT_DETACH = 2


def cgroup_root_name() -> str:
    return f"{CGROUP_PREFIX}{uuid.uuid4().hex[:10]}"


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1 : i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mountinfo() -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount in this mount namespace."""
    entries = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) >= 5 and right:
            entries.append((_unescape(fields[4]), right.split()[0]))
    return entries


def cgroup_hierarchies() -> list[tuple[Path, str]]:
    """(mount point, 'cgroup' | 'cgroup2') of every mounted cgroup hierarchy."""
    return [(Path(mp), fs) for mp, fs in _mountinfo() if fs in ("cgroup", "cgroup2")]


def create_cgroup_root(name: str) -> None:
    """``/<name>`` in every v1 hierarchy (the kubelet requires its cgroup root to exist)."""
    for mount, fstype in cgroup_hierarchies():
        if fstype != "cgroup":
            continue  # on a hybrid host the kubelet and runc use the v1 hierarchies
        path = mount / name
        path.mkdir(exist_ok=True)
        # A new v1 cpuset starts with no CPUs and no memory nodes: inherit the parent's.
        for knob in ("cpuset.cpus", "cpuset.mems"):
            if (path / knob).exists() and not (path / knob).read_text().strip():
                (path / knob).write_text((mount / knob).read_text())


def remove_cgroup_tree(name: str) -> list[Path]:
    """rmdir ``/<name>`` and its descendants in every hierarchy, deepest first.

    Returns what could not be removed (a cgroup with processes left refuses rmdir, so a
    busy cgroup is never torn away from under its processes).
    """
    left: list[Path] = []
    for mount, _fstype in cgroup_hierarchies():
        top = mount / name
        if not top.is_dir():
            continue
        directories = [Path(d) for d, _subdirs, _files in os.walk(top)]
        for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except OSError:
                left.append(directory)
    return left


def cgroup_processes(name: str) -> set[int]:
    """Every process in ``/<name>`` or below, in any hierarchy."""
    pids: set[int] = set()
    for mount, _fstype in cgroup_hierarchies():
        for directory, _subdirs, files in os.walk(mount / name):
            if "cgroup.procs" in files:
                with contextlib.suppress(OSError, ValueError):
                    text = (Path(directory) / "cgroup.procs").read_text()
                    pids.update(int(line) for line in text.split())
    return pids


def kill_and_wait(pids: Iterable[int], timeout: float = 10.0) -> None:
    """SIGKILL ``pids`` and wait until they are gone (or reaped by someone else)."""
    remaining = set(pids)
    for pid in remaining:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if _alive(pid)}
        if remaining:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def processes_with_argument(binary_suffix: str, argument: str) -> list[int]:
    """Pids whose argv[0] ends with ``binary_suffix`` and whose argv holds ``argument``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(binary_suffix.encode()) and argument.encode() in argv:
            found.append(int(entry.name))
    return found


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    root = str(directory.resolve())
    found = [Path(mp) for mp, _fs in _mountinfo() if mp == root or mp.startswith(root + "/")]
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def unmount_under(directory: Path) -> list[Path]:
    """Detach every mount below ``directory``; returns those that stay mounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    for mount in mounts_under(directory):
        libc.umount2(str(mount).encode(), _MNT_DETACH)
    return mounts_under(directory)


def remove_tree(directory: Path) -> None:
    """``rm -rf --one-file-system``: never descends into something still mounted below it,
    and is ~10x faster than shutil.rmtree on unpacked image layers (~20k files)."""
    if directory.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(directory)], check=False)


def missing_fixed_paths() -> list[str]:
    """The fixed paths that do not exist now (recorded at node start: the node made them)."""
    return [str(p) for p in FIXED_PATHS if not p.exists()]


def remove_log_links(pod_logs_dir: Path) -> None:
    """The kubelet's /var/log/containers symlinks that point into ``pod_logs_dir``."""
    if not CONTAINER_LOG_LINKS.is_dir():
        return
    prefix = str(pod_logs_dir.resolve()) + "/"
    for link in CONTAINER_LOG_LINKS.iterdir():
        with contextlib.suppress(OSError):
            if link.is_symlink() and os.readlink(link).startswith(prefix):
                link.unlink()


def other_kubelets_running(exclude: set[int]) -> bool:
    """Whether a kubelet process (ours as ``kube kubelet``, or any other) runs on this host."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        names = [os.path.basename(a.decode(errors="replace")) for a in argv[:2]]
        if "kubelet" in names:
            return True
    return False


def remove_created_paths(created: list[str], *, exclude_pids: set[int]) -> list[str]:
    """Remove the fixed paths this node created, unless another kubelet still uses them.

    Only empty directories are removed (plus the device manager's own socket/checkpoint):
    anything else found there belongs to someone else and stays. Returns what stays.
    """
    if other_kubelets_running(exclude_pids):
        return [p for p in created if Path(p).exists()]
    for raw in created:  # FIXED_PATHS order: children before parents
        path = Path(raw)
        if path == FIXED_PATHS[0] and path.is_dir():
            for name in ("kubelet.sock", "kubelet_internal_checkpoint"):
                with contextlib.suppress(OSError):
                    (path / name).unlink()
        with contextlib.suppress(OSError):
            path.rmdir()
    return [p for p in created if Path(p).exists()]
