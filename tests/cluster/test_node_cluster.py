"""The real node itself (issue 12, items 1-2): a kubelet registered as a Node, its API
authenticated, everything on loopback, ``down`` leaving nothing behind, and the images
built here (cached, product-only).

The first test starts and stops a private node through the CLI (before the session's
``real_node`` exists, so it is the only kubelet and must remove the host paths it made).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from node_support import RealNodeCluster

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.processes import running
from inference_thresholds_dev.local_chart import host_network_pod, pause_image
from inference_thresholds_dev.node import host
from inference_thresholds_dev.node.containerd import SHIM

pytestmark = pytest.mark.node

_CLI = "import sys; from inference_thresholds_dev.cli import main; sys.exit(main())"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], capture_output=True, text=True, check=False
    )


def _log_links_into(directory: Path) -> list[Path]:
    if not host.CONTAINER_LOG_LINKS.is_dir():
        return []
    return [
        link
        for link in host.CONTAINER_LOG_LINKS.iterdir()
        if link.is_symlink() and os.readlink(link).startswith(str(directory))
    ]


@pytest.mark.parametrize("crash", [False, True], ids=["clean", "after-a-crash"])
def test_down_leaves_no_processes_mounts_cgroups_or_host_paths(crash: bool) -> None:
    """``crash``: containerd and the kubelet are SIGKILLed first (no CRI to stop the pods:
    down must still find and kill the containers and shims, unmount, remove cgroups)."""
    if os.geteuid() != 0:
        pytest.skip("a real node (containerd, kubelet, runc) needs root")
    existed = {p: p.exists() for p in host.FIXED_PATHS}
    state_dir = Path(tempfile.mkdtemp(prefix="itn-down-", dir="/tmp"))
    try:
        up = _cli("dev-cluster", "up", "--node", "--no-images", f"--state-dir={state_dir}")
        assert up.returncode == 0, up.stderr[-3000:]
        state = json.loads((state_dir / "state.json").read_text())
        pids = [int(p["pid"]) for p in state["processes"]]
        assert {p["name"] for p in state["processes"]} >= {"kubelet", "containerd"}
        cgroup_root = state["node"]["cgroupRoot"]
        kube = ClusterAccess(Path(up.stdout.strip()), local=True)
        # A pod, so there are containers, mounts, cgroups and log links to clean up.
        node = json.loads(kube.kubectl("get", "node", "localhost", "-o", "json").stdout)
        pod = host_network_pod("sleeper", "default", pause_image(node))
        kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
        kube.eventually(
            lambda: (
                json.loads(kube.kubectl("get", "pod", "sleeper", "-o", "json").stdout)[
                    "status"
                ].get("phase")
                == "Running"
            ),
            timeout=60,
            what="pod Running",
        )
        socket = state_dir / "node" / "containerd" / "containerd.sock"
        shims = host.processes_with_argument(SHIM, str(socket))
        assert shims, "the pod's containerd shim runs"
        assert host.mounts_under(state_dir), "the pod's volumes and rootfs are mounted"
        assert any((m / cgroup_root).is_dir() for m, _ in host.cgroup_hierarchies())
        assert _log_links_into(state_dir)
        if crash:
            for name in ("kubelet", "containerd"):
                (pid,) = [int(p["pid"]) for p in state["processes"] if p["name"] == name]
                os.kill(pid, signal.SIGKILL)
            ClusterAccess.eventually(lambda: not running(pid), timeout=10, what="containerd killed")
            assert all(running(pid) for pid in shims), "the shims outlive containerd"
    finally:
        down = _cli("dev-cluster", "down", f"--state-dir={state_dir}")
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    ClusterAccess.eventually(
        lambda: not any(running(pid) for pid in [*pids, *shims]),
        timeout=30,
        what="every process (control plane, node, shims) gone",
    )
    assert host.mounts_under(state_dir) == []
    assert not any((m / cgroup_root).exists() for m, _ in host.cgroup_hierarchies())
    assert _log_links_into(state_dir) == []
    if not host.other_kubelets_running(exclude=set()):
        created = [p for p, was in existed.items() if not was]
        assert [p for p in created if p.exists()] == [], "host paths the node created"


def _node(real_node: RealNodeCluster) -> dict[str, Any]:
    return real_node.get("node", real_node.node_name)


def test_node_registered_by_a_real_kubelet(real_node: RealNodeCluster) -> None:
    node = _node(real_node)
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == "v1.35.4"
    assert info["containerRuntimeVersion"].startswith("containerd://1.")
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert not [t for t in node["spec"].get("taints") or [] if "not-ready" in t["key"]]
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["Hostname"] == "localhost"  # what the apiserver dials


def _kubelet_get(port: int, path: str, context: ssl.SSLContext) -> int:
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}{path}", context=context, timeout=5
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_kubelet_api_is_authenticated_and_authorized(real_node: RealNodeCluster) -> None:
    port = _node(real_node)["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    pki = real_node.cluster.pki_dir
    anonymous = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    assert _kubelet_get(port, "/pods", anonymous) == 401  # no anonymous access
    admin = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    admin.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    assert _kubelet_get(port, "/pods", admin) == 200
    # A client the cluster knows but RBAC does not allow: the webhook authorizer says no.
    scheduler = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    scheduler.load_cert_chain(str(pki / "scheduler.crt"), str(pki / "scheduler.key"))
    assert _kubelet_get(port, "/pods", scheduler) == 403


def _listening(pid: int) -> list[str]:
    """Local addresses of the TCP sockets ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address = fields[1].split(":")[0]
                found.append(_address(address, width))
    return found


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return ".".join(str(b) for b in reversed(raw))
    words = [raw[i : i + 4][::-1] for i in range(0, 16, 4)]
    return ":".join(b"".join(words).hex()[i : i + 4] for i in range(0, 32, 4))


def test_every_component_listens_on_loopback_only(real_node: RealNodeCluster) -> None:
    loopback = ("127.0.0.1", "0000:0000:0000:0000:0000:0000:0000:0001")
    seen = {}
    for proc in real_node.cluster.processes:
        addresses = _listening(proc.pid)
        seen[proc.name] = addresses
        assert all(a in loopback for a in addresses), f"{proc.name} listens on {addresses}"
    assert seen["kubelet"] and seen["kube-apiserver"], seen


def test_exec_and_logs_reach_a_pod_running_the_product_image(
    real_node: RealNodeCluster,
) -> None:
    """kubectl exec/logs go apiserver -> kubelet -> containerd's stream server (loopback),
    and what runs is the product image: no development tooling in it."""
    name = "product-image"
    pod = host_network_pod(
        name,
        "default",
        real_node.images["operator"].ref,
        command=["/bin/sh", "-c", "echo started; exec sleep 3600"],
    )
    real_node.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    try:
        real_node.await_phase("default", name, "Running", timeout=60)
        assert "started" in real_node.kube.eventually(
            lambda: real_node.logs("default", name), timeout=30, what="log line"
        )
        script = (
            "inference-thresholds --help; ls /opt/venv/bin; "
            "python -c 'import inference_thresholds_dev' 2>&1; id -u"
        )
        out = real_node.kubectl("exec", name, "--", "sh", "-c", script)
        assert "compute" in out and "dev-cluster" not in out
        assert "inference-thresholds-dev" not in out and "pip" not in out.split()
        assert "No module named 'inference_thresholds_dev'" in out
        assert out.strip().splitlines()[-1] == "65532"
    finally:
        real_node.kubectl("delete", "pod", name, "--wait=false")


def test_project_images_are_cached_by_content(real_node: RealNodeCluster) -> None:
    from inference_thresholds_dev.images.build import project_images
    from inference_thresholds_dev.local_chart import REPOSITORY_ROOT

    again = project_images(REPOSITORY_ROOT)
    for name, image in again.items():
        assert image.cached, f"{name} rebuilt although nothing changed"
        assert image.ref == real_node.images[name].ref
        assert image.ref in real_node.node.images()
    assert shutil.which("podman")
