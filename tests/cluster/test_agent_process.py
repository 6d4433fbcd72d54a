"""``inference-thresholds node-agent run`` as a process: --once, then a long run with
/healthz, /readyz and /metrics, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_dev.cluster.access import ClusterAccess

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
CLI = [sys.executable, "-m", "inference_thresholds.cli.main"]


@pytest.fixture
def node_name(kube: ClusterAccess) -> Iterator[str]:
    name = f"agent-proc-{uuid.uuid4().hex[:6]}"
    with kube.api_client() as api:
        client.CoreV1Api(api).create_node({"apiVersion": "v1", "kind": "Node",
                                           "metadata": {"name": name}})  # fmt: skip
        yield name
        with contextlib.suppress(ApiException):
            client.CoreV1Api(api).delete_node(name)


def labels(kube: ClusterAccess, name: str) -> dict[str, str]:
    with kube.api_client() as api:
        found: dict[str, str] = client.CoreV1Api(api).read_node(name).metadata.labels or {}
        return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_run_once(kube: ClusterAccess, node_name: str) -> None:
    result = subprocess.run(
        [*CLI, "node-agent", "run", "--once", "--node-name", node_name,
         "--kubeconfig", str(kube.kubeconfig), "--root", str(HOSTS / "hgx-h100-mig")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"node {node_name}: ok (wrote)" in result.stdout
    assert labels(kube, node_name)[LABEL_PREFIX + "gpu.mig-enabled"] == "true"


def test_long_running_agent_serves_health_and_metrics(kube: ClusterAccess, node_name: str) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "node-agent", "run", "--node-name", node_name, "--interval", "3600",
         "--kubeconfig", str(kube.kubeconfig), "--root", str(HOSTS / "dgx-a100-80gb"),
         "--metrics-address", "127.0.0.1", "--metrics-port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def get(path: str) -> tuple[int, str] | None:
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, ""
        except OSError:
            return None  # not listening yet

    try:
        kube.eventually(lambda: (get("/readyz") or (0, ""))[0] == 200, timeout=60,
                        what="agent ready")  # fmt: skip
        assert (get("/healthz") or (0, ""))[0] == 200
        metrics = (get("/metrics") or (0, ""))[1]
        assert "inference_thresholds_agent_node_writes_total 1.0" in metrics
        assert 'inference_thresholds_agent_gpu_detection_state{state="ok"} 1.0' in metrics
        assert labels(kube, node_name)[LABEL_PREFIX + "gpu.count"] == "8"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    assert process.returncode == 0, output
    assert "node " + node_name + " updated" in output
