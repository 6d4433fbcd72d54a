"""containerd (Debian's 1.6, CRI v1) as a child process with all its state in one directory.

The configuration moves everything containerd would put under /var/lib/containerd,
/run/containerd, /opt/containerd, /etc/cni and /run/netns into the node's directory; what
stays fixed is listed in ``host.FIXED_PATHS``. Two settings are required on these machines:
``restrict_oom_score_adj`` (root lacks CAP_SYS_RESOURCE, so runc cannot lower a container's
oom_score_adj below containerd's and every sandbox would fail) and runc, not crun (crun 1.8
fails on a cgroup v1 hybrid host).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
SHIM = "containerd-shim-runc-v2"
# Fixed in containerd 1.6 (runtime/v2/shim.SocketAddress): a shim listens on
# /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">.
SHIM_SOCKET_DIR = Path("/run/containerd/s")


class ContainerdError(RuntimeError):
    """containerd or ctr failed; the message carries the command's output."""


@dataclass(frozen=True)
class ContainerdLayout:
    """Where one node's containerd keeps its files (all under ``base``)."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def endpoint(self) -> str:
        return f"unix://{self.socket}"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def opt(self) -> Path:
        return self.base / "opt"


def _toml_string(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def find_runc() -> str:
    found = shutil.which("runc") or next(
        (p for p in ("/usr/sbin/runc", "/usr/bin/runc") if Path(p).is_file()), None
    )
    if found is None:
        raise ContainerdError("runc not found; install the Debian package runc")
    return found


def render_config(layout: ContainerdLayout, sandbox_image: str, cni_bin_dir: Path) -> str:
    """containerd's config.toml (version 2) for a node rooted at ``layout.base``."""
    q = _toml_string
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = f"{cri[:-1]}.containerd.runtimes.runc]"
    return f"""\
version = 2
root = {q(layout.root)}
state = {q(layout.state)}
# Snapshotters this host cannot use: skipped instead of probed on every start.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = {q(layout.socket)}

[plugins."io.containerd.internal.v1.opt"]
  path = {q(layout.opt)}

{cri}
  sandbox_image = {q(sandbox_image)}
  # Root here lacks CAP_SYS_RESOURCE: runc may only raise oom_score_adj.
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns.
  netns_mounts_under_state_dir = true
  # kubectl logs/exec/port-forward: containerd's streaming server on loopback only.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true

{cri[:-1]}.containerd]
  default_runtime_name = "runc"
  snapshotter = "overlayfs"

{runc}
  runtime_type = "io.containerd.runc.v2"

{runc[:-1]}.options]
  BinaryName = {q(find_runc())}
  Root = {q(layout.runc_root)}
  SystemdCgroup = false

{cri[:-1]}.cni]
  bin_dir = {q(cni_bin_dir)}
  conf_dir = {q(layout.cni_conf_dir)}
"""


# Pods that are not hostNetwork get a network namespace with only a loopback interface:
# enough for the node to report NetworkReady, and nothing can leave the machine.
LOOPBACK_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "loopback-only",
    "plugins": [{"type": "loopback"}],
}


def find_cni_bin_dir() -> Path:
    for candidate in ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni"):
        if (Path(candidate) / "loopback").is_file():
            return Path(candidate)
    raise ContainerdError(
        "the CNI loopback plugin was not found; install the Debian package "
        "containernetworking-plugins"
    )


def write_files(layout: ContainerdLayout, sandbox_image: str) -> None:
    layout.base.mkdir(parents=True, exist_ok=True)
    layout.cni_conf_dir.mkdir(exist_ok=True)
    (layout.cni_conf_dir / "10-loopback.conflist").write_text(json.dumps(LOOPBACK_CONFLIST))
    layout.config.write_text(render_config(layout, sandbox_image, find_cni_bin_dir()))


def argv(layout: ContainerdLayout) -> list[str]:
    binary = shutil.which("containerd")
    if binary is None:
        raise ContainerdError("containerd not found; install the Debian package containerd")
    return [binary, "--config", str(layout.config), "--log-level", "warn"]


def ctr(layout: ContainerdLayout, *args: str, timeout: float = 300) -> str:
    """Run ``ctr`` against this containerd in the CRI namespace; stdout, or raise."""
    binary = shutil.which("ctr")
    if binary is None:
        raise ContainerdError("ctr not found; install the Debian package containerd")
    command = [binary, "--address", str(layout.socket), "--namespace", NAMESPACE, *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise ContainerdError(
            f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result.stdout


def serving(layout: ContainerdLayout) -> bool:
    if not layout.socket.exists():
        return False
    try:
        ctr(layout, "version", timeout=10)
    except (ContainerdError, subprocess.TimeoutExpired):
        return False
    return True


def import_image(layout: ContainerdLayout, archive: Path) -> None:
    """Import (and unpack) an OCI archive; its images keep the names they were saved with."""
    ctr(layout, "images", "import", str(archive))


def image_names(layout: ContainerdLayout) -> list[str]:
    return ctr(layout, "images", "list", "--quiet").split()


def tag_image(layout: ContainerdLayout, source: str, target: str) -> None:
    """Give an imported image another name (``ctr images tag``), replacing an old one."""
    ctr(layout, "images", "tag", "--force", source, target)


def shim_socket(pid: int) -> Path | None:
    """The socket of the runc shim ``pid`` (from its -address/-namespace/-id), or None."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    flags = dict(zip(argv[1::2], argv[2::2], strict=False))
    if not all(k in flags for k in ("-address", "-namespace", "-id")):
        return None
    key = os.path.join(flags["-address"], flags["-namespace"], flags["-id"])
    return SHIM_SOCKET_DIR / hashlib.sha256(key.encode()).hexdigest()
