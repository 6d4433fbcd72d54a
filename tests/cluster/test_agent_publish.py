"""The node agent against a real kube-apiserver: publish, read back, stale keys, no-op passes."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from inference_thresholds.api import HardwareProfile
from inference_thresholds.api.node_contract import (
    LABEL_PREFIX,
    OWNED_LABELS_ANNOTATION,
    PROFILE_ANNOTATION,
)
from inference_thresholds_agent.agent import Agent, AgentMetrics
from inference_thresholds_agent.nvidia import GpuState, RecordedNvml
from inference_thresholds_agent.profile import Detector, Scope
from inference_thresholds_agent.publisher import KubernetesNodeApi
from inference_thresholds_dev.cluster.access import ClusterAccess

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
DGX = HOSTS / "dgx-a100-80gb"


@pytest.fixture
def admin(kube: ClusterAccess) -> Iterator[Any]:
    with kube.api_client() as api:
        yield api


@pytest.fixture
def node_name(admin: Any) -> Iterator[str]:
    """A Node object with someone else's labels and an allocatable CPU figure."""
    name = f"agent-node-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(admin)
    core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "team": "ml"},
                "annotations": {"example.com/owner": "someone-else"},
            },
        }
    )
    core.patch_node_status(name, {"status": {"allocatable": {"cpu": "250", "pods": "110"}}})
    yield name
    with contextlib.suppress(ApiException):
        core.delete_node(name)


def read_node(admin: Any, name: str) -> dict[str, Any]:
    response = client.CoreV1Api(admin).read_node(name, _preload_content=False)
    node: dict[str, Any] = json.loads(response.data)
    return node


def dgx_nvml(**changes: Any) -> RecordedNvml:
    data = json.loads((DGX / "nvml.json").read_text())
    data.update(changes)
    return RecordedNvml(data)


def agent_for(admin: Any, name: str, nvml: RecordedNvml | None = None) -> Agent:
    detector = Detector(DGX, nvml=nvml or dgx_nvml(), scope=Scope.NODE)
    return Agent(name, KubernetesNodeApi(admin), detector, metrics=AgentMetrics())


def test_publish_and_read_back(admin: Any, node_name: str) -> None:
    agent = agent_for(admin, node_name)
    result = agent.tick()
    assert result.ok and result.wrote
    node = read_node(admin, node_name)
    labels = node["metadata"]["labels"]
    annotations = node["metadata"]["annotations"]
    assert labels[LABEL_PREFIX + "gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert labels[LABEL_PREFIX + "gpu.count"] == "8"
    assert labels[LABEL_PREFIX + "cpu.usable-cores"] == "250"  # capped by allocatable
    assert labels[LABEL_PREFIX + "memory.bandwidth-gbps"] == "410"
    assert labels["team"] == "ml"
    assert annotations["example.com/owner"] == "someone-else"
    profile = HardwareProfile.model_validate(json.loads(annotations[PROFILE_ANNOTATION]))
    assert profile.gpus[0].memory_bandwidth_gbps == 2039.0
    assert profile.cpu.usable_cores == 250.0
    owned = set(annotations[OWNED_LABELS_ANNOTATION].split(","))
    assert owned == {k for k in labels if k.startswith(LABEL_PREFIX)}


def test_no_write_when_unchanged(admin: Any, node_name: str) -> None:
    agent = agent_for(admin, node_name)
    assert agent.tick().wrote
    version = read_node(admin, node_name)["metadata"]["resourceVersion"]
    for _ in range(5):
        result = agent.tick()
        assert result.ok and not result.wrote
    assert agent.metrics.count("node_writes_total") == 1
    assert agent.metrics.count("detections_total", result="ok") == 6
    assert read_node(admin, node_name)["metadata"]["resourceVersion"] == version


def test_stale_owned_keys_removed_others_untouched(admin: Any, node_name: str) -> None:
    core = client.CoreV1Api(admin)
    # A label under our prefix that the agent never wrote (a user's pin) must survive.
    core.patch_node(node_name, {"metadata": {"labels": {LABEL_PREFIX + "pinned": "yes"}}})
    agent_for(admin, node_name).tick()
    assert read_node(admin, node_name)["metadata"]["labels"][LABEL_PREFIX + "gpu.count"] == "8"

    # The same node without GPUs (say, moved to a CPU pool's fixture): GPU keys go away.
    cpu_only = Agent(
        node_name,
        KubernetesNodeApi(admin),
        Detector(HOSTS / "arm-graviton3-cgroup-v2", scope=Scope.NODE),
        metrics=AgentMetrics(),
    )
    assert cpu_only.tick().wrote
    labels = read_node(admin, node_name)["metadata"]["labels"]
    assert not any(k.startswith(LABEL_PREFIX + "gpu.") for k in labels)
    assert labels[LABEL_PREFIX + "cpu.arch"] == "aarch64"
    assert labels[LABEL_PREFIX + "pinned"] == "yes"
    assert labels["team"] == "ml"
    owned = read_node(admin, node_name)["metadata"]["annotations"][OWNED_LABELS_ANNOTATION]
    assert LABEL_PREFIX + "pinned" not in owned.split(",")


def test_nvml_absent_then_ready(admin: Any, node_name: str) -> None:
    nvml = dgx_nvml(initErrors=2)
    agent = agent_for(admin, node_name, nvml)
    first = agent.tick()
    assert first.ok and first.detection is not None
    assert first.detection.gpu_state is GpuState.PENDING
    assert first.next_delay_s == 5
    labels = read_node(admin, node_name)["metadata"]["labels"]
    assert labels[LABEL_PREFIX + "cpu.logical-cores"] == "256"
    assert LABEL_PREFIX + "gpu.count" not in labels

    second = agent.tick()
    assert second.detection is not None and second.detection.gpu_state is GpuState.PENDING
    assert not second.wrote  # still pending: nothing new to write
    third = agent.tick()
    assert third.detection is not None and third.detection.gpu_state is GpuState.OK
    assert read_node(admin, node_name)["metadata"]["labels"][LABEL_PREFIX + "gpu.count"] == "8"
    assert agent.metrics.count("node_writes_total") == 2


def test_missing_node_is_an_error_not_a_crash(admin: Any) -> None:
    agent = agent_for(admin, f"absent-{uuid.uuid4().hex[:6]}")
    result = agent.tick()
    assert not result.ok and result.next_delay_s == 5
    assert agent.metrics.count("errors_total", stage="publish") == 1
