"""A real node for the local cluster: containerd + runc and a kubelet, on loopback.

``LocalCluster(node=True)`` starts it after the control plane (with kube-scheduler): it
spawns the processes listed here, waits for the Node to be Ready, and at teardown calls
``teardown`` so nothing stays behind (containers, mounts, cgroups, host paths; see
``host``). Images reach the node without a registry: ``import_image`` loads an OCI archive
(``inference_thresholds_dev.images``) into containerd.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import containerd, host, kubelet
from .containerd import ContainerdLayout
from .kubelet import NODE_NAME, KubeletLayout

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
# sun_path holds 108 bytes with its terminating NUL; containerd also listens on its
# socket's path + ".ttrpc".
_MAX_SOCKET_PATH = 107


class NodeError(RuntimeError):
    """The node cannot run as asked; the message says why and what to change."""


@dataclass
class NodeRecord:
    """What teardown needs, persisted in the cluster's state.json (``dev-cluster down``)."""

    directory: Path
    cgroup_root: str
    created_paths: list[str] = field(default_factory=list)

    def wire(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "cgroupRoot": self.cgroup_root,
            "createdPaths": self.created_paths,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> NodeRecord:
        return cls(
            Path(data["directory"]), str(data["cgroupRoot"]), list(data.get("createdPaths", []))
        )


class RealNode:
    """Files, argv and teardown of one node rooted at ``record.directory``."""

    def __init__(self, record: NodeRecord) -> None:
        self.record = record
        self.containerd = ContainerdLayout(record.directory / "containerd")
        self.kubelet = KubeletLayout(record.directory / "kubelet")

    @classmethod
    def create(cls, directory: Path) -> RealNode:
        return cls(NodeRecord(directory, host.cgroup_root_name()))

    @property
    def name(self) -> str:
        return NODE_NAME

    def sockets(self) -> list[Path]:
        """The longest unix socket paths the node creates below its directory."""
        ttrpc = self.containerd.socket.with_name(self.containerd.socket.name + ".ttrpc")
        return [ttrpc, self.kubelet.root_dir / "pod-resources" / "kubelet.sock"]

    def check_paths(self) -> None:
        too_long = [s for s in self.sockets() if len(str(s)) > _MAX_SOCKET_PATH]
        if too_long:
            raise NodeError(
                f"{too_long[0]} is too long for a unix socket ({len(str(too_long[0]))} > "
                f"{_MAX_SOCKET_PATH} bytes): use a shorter state directory than "
                f"{self.record.directory.parent} (at most ~55 characters)"
            )

    def prepare(
        self,
        *,
        sandbox_image: str,
        kubelet_port: int,
        ca_cert: Path,
        serving_cert: Path,
        serving_key: Path,
    ) -> None:
        """Write containerd's and the kubelet's files; create the node's cgroup root."""
        self.record.created_paths = host.missing_fixed_paths()
        host.create_cgroup_root(self.record.cgroup_root)
        containerd.write_files(self.containerd, sandbox_image)
        config = kubelet.render_config(
            self.kubelet,
            port=kubelet_port,
            ca_cert=ca_cert,
            serving_cert=serving_cert,
            serving_key=serving_key,
            runtime_endpoint=self.containerd.endpoint,
            cgroup_root=self.record.cgroup_root,
        )
        kubelet.write_files(self.kubelet, config)

    def containerd_argv(self) -> list[str]:
        return containerd.argv(self.containerd)

    def kubelet_argv(self, kube: Path) -> list[str]:
        return kubelet.argv(kube, self.kubelet)

    def containerd_serving(self) -> bool:
        return containerd.serving(self.containerd)

    def import_image(self, archive: Path) -> None:
        containerd.import_image(self.containerd, archive)

    def tag_image(self, source: str, target: str) -> None:
        containerd.tag_image(self.containerd, source, target)

    def images(self) -> list[str]:
        return containerd.image_names(self.containerd)

    def remove_pods(self, kube: Path) -> str | None:
        """Stop and remove every pod sandbox through CRI (releases netns and mounts).

        Needs containerd running; returns an error message instead of raising.
        """
        if not self.containerd.socket.exists():
            return None
        command = [str(kube), "cri-reset", f"--endpoint={self.containerd.endpoint}"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "cri-reset timed out"
        return None if result.returncode == 0 else (result.stderr.strip() or "cri-reset failed")

    def teardown(self, *, exclude_pids: set[int], remove_files: bool) -> list[str]:
        """After the node's processes stopped: unmount, remove cgroups, links, host paths.

        Returns what could not be removed (empty when the host is clean again). The fixed
        kubelet paths stay while another kubelet on this host still uses them; that is not
        a problem of this node's teardown (the last node to stop removes them).
        """
        # Normally none: cri-reset stopped the pods. After a crash (containerd gone), the
        # containers are still in the node's cgroups and their shims still run; a killed
        # shim leaves its socket in the fixed /run/containerd/s.
        shims = host.processes_with_argument(containerd.SHIM, str(self.containerd.socket))
        sockets = [containerd.shim_socket(pid) for pid in shims]
        host.kill_and_wait(host.cgroup_processes(self.record.cgroup_root) | set(shims))
        for socket in sockets:
            if socket is not None:
                socket.unlink(missing_ok=True)
        problems = [f"still mounted: {m}" for m in host.unmount_under(self.record.directory)]
        problems += [f"cgroup busy: {c}" for c in host.remove_cgroup_tree(self.record.cgroup_root)]
        host.remove_log_links(self.kubelet.pod_logs)
        host.remove_created_paths(self.record.created_paths, exclude_pids=exclude_pids)
        if remove_files and not problems:
            host.remove_tree(self.record.directory)
        return problems
