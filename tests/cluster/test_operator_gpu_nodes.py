"""GPU nodes without the agent's GPUs, shared GPUs, and Gt/Lt selectors, against a real
kube-apiserver: the Node objects carry GPU Feature Discovery labels and the device
plugin's extended resources (tests/fixtures/nodes), the CRs go through the CRD's schema
and CEL rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Cluster, OperatorProcess, eventually, nodes, unique

from inference_thresholds.api.thresholds_document import ThresholdsDocument
from inference_thresholds_agent.agent import Agent, AgentMetrics
from inference_thresholds_agent.profile import Detector, Scope
from inference_thresholds_agent.publisher import KubernetesNodeApi
from inference_thresholds_dev.cluster.access import ClusterAccess

FIXTURES = Path(__file__).parents[1] / "fixtures" / "nodes"
HOSTS = Path(__file__).parents[1] / "fixtures" / "hosts"
POOL = "test.inference.dev/pool"
MILLICORES = "hw.inference.dev/cpu.usable-millicores"


@pytest.fixture
def pool() -> str:
    return unique("gpu")


def _gfd_node(name: str, pool: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A Node spec for ``nodes()`` from a fixture: its labels and nvidia.com/* resources."""
    node = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    allocatable = node["status"]["allocatable"]
    resources = {k: v for k, v in allocatable.items() if k.startswith("nvidia.com/")}
    labels = {**node["metadata"]["labels"], POOL: pool}
    return f"{pool}-{name}", labels, {"cpu": "64", "memory": "512Gi", "resources": resources}


def _decisions(cluster: Cluster, namespace: str, cm: str) -> str:
    doc = cluster.document(namespace, cm)
    (entry,) = doc["classes"].values()
    return "\n".join(entry["decisions"])


def test_gfd_only_mig_node_is_a_gpu_node_with_the_slice_named(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    model = {"preset": "llama-3.1-8b", "weightBits": 4.5}
    with nodes(cluster, [_gfd_node("gfd-a100-80gb-mig-mixed", pool)]):
        cluster.create_cr(
            namespace,
            "big-slice",
            {
                "nodeSelector": {"matchLabels": {POOL: pool}},
                "model": model,
                "context": {"constraints": {"gpuResource": "nvidia.com/mig-3g.40gb"}},
            },
        )
        cluster.create_cr(
            namespace,
            "default-slice",
            {"nodeSelector": {"matchLabels": {POOL: pool}}, "model": model},
        )
        big = cluster.await_condition(namespace, "big-slice", generation=1)["status"]
        small = cluster.await_condition(namespace, "default-slice", generation=1)["status"]
        (cls,) = big["classes"]
        assert cls["hardwareSource"] == "gfd+nfd+capacity"
        assert "MIG 28x 1g.10gb, MIG 8x 3g.40gb" in cls["hardwareSummary"]
        assert cls["name"].startswith("gpu-nvidia-a100-sxm4-80gb-x8-")
        lines = _decisions(cluster, namespace, "big-slice-thresholds")
        assert "device.partition = MIG 3g.40gb" in lines
        assert "device.partition.bandwidthShare = 0.5" in lines
        assert (
            "hardware.gpus[0].product: gfd (nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB)" in lines
        )
        # Nothing requested: the smallest slice, held to an eighth of the bandwidth.
        assert "device.partition = MIG 1g.10gb" in _decisions(
            cluster, namespace, "default-slice-thresholds"
        )
        assert small["effective"]["minTokensPerSecond"] < big["effective"]["minTokensPerSecond"] / 2


def test_agent_without_gpus_on_a_gfd_node_is_a_gpu_node(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    name, labels, extra = _gfd_node("gfd-t4-time-sliced", pool)
    cpu_only = {
        "cpu": {"model": "Intel Xeon Platinum 8259CL", "physicalCores": 2, "usableCores": 4}
    }
    extra["annotations"] = {"hw.inference.dev/profile": json.dumps(cpu_only)}
    with nodes(cluster, [(name, labels, extra)]):
        cluster.create_cr(
            namespace,
            "t4",
            {
                "nodeSelector": {"matchLabels": {POOL: pool}},
                "model": {"preset": "bitnet-b1.58-2b-4t"},
            },
        )
        (cls,) = cluster.await_condition(namespace, "t4", generation=1)["status"]["classes"]
        assert cls["hardwareSource"] == "agent+gfd+capacity"
        assert "1x Tesla T4" in cls["hardwareSummary"]
        lines = _decisions(cluster, namespace, "t4-thresholds")
        assert "device.kind = gpu" in lines
        assert "device.partition = whole GPU, time-slicing 1/4" in lines
        assert "no NVML in its container" in lines


def test_agent_mig_instances_named_by_the_nodes_resources(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str, kube: ClusterAccess
) -> None:
    """The agent publishes MIG instances it read through NVML (a recording); the device
    plugin's resources on the same Node say what pods request them as."""
    resources = {f"nvidia.com/mig-{p}": "1" for p in ("1g.10gb", "2g.20gb", "3g.40gb")}
    spec = (f"{pool}-agent", {POOL: pool}, {"resources": {**resources, "nvidia.com/gpu": "1"}})
    with nodes(cluster, [spec]), kube.api_client() as api:
        detector = Detector(HOSTS / "a100-80gb-mig-mixed", scope=Scope.NODE)
        assert Agent(spec[0], KubernetesNodeApi(api), detector, metrics=AgentMetrics()).tick().ok
        cluster.create_cr(
            namespace,
            "slice",
            {
                "nodeSelector": {"matchLabels": {POOL: pool}},
                "model": {"preset": "bitnet-b1.58-2b-4t"},
                "context": {"constraints": {"gpuResource": "nvidia.com/mig-2g.20gb"}},
            },
        )
        (cls,) = cluster.await_condition(namespace, "slice", generation=1)["status"]["classes"]
        assert cls["hardwareSource"] == "agent+capacity"
        lines = _decisions(cluster, namespace, "slice-thresholds")
        assert "device.partition = MIG 2g.20gb" in lines
        assert "hardware.gpus[0].partitions[2g.20gb].resource: capacity" in lines
        # The whole GPU beside the slices is what a plain nvidia.com/gpu request gets.
        cluster.patch_spec(
            namespace, "slice", {"context": {"constraints": {"gpuResource": "nvidia.com/gpu"}}}
        )
        cluster.await_condition(namespace, "slice", generation=2)
        assert "device.partition" not in _decisions(cluster, namespace, "slice-thresholds")


def test_gt_and_lt_select_by_integer_labels(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    specs: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (f"{pool}-big", {POOL: pool, MILLICORES: "7910"}, {}),
        (f"{pool}-small", {POOL: pool, MILLICORES: "2000"}, {}),
        (f"{pool}-decimal", {POOL: pool, MILLICORES: "7.91"}, {}),  # never an integer match
        (f"{pool}-none", {POOL: pool}, {}),
    ]

    def selector(op: str, value: str) -> dict[str, Any]:
        return {
            "matchLabels": {POOL: pool},
            "matchExpressions": [{"key": MILLICORES, "operator": op, "values": [value]}],
        }

    with nodes(cluster, specs):
        spec = {"nodeSelector": selector("Gt", "4000"), "model": {"preset": "bitnet-b1.58-2b-4t"}}
        cluster.create_cr(namespace, "sel", spec)
        doc_nodes = lambda: set(  # noqa: E731
            ThresholdsDocument.model_validate(
                cluster.document(namespace, "sel-thresholds")
            ).node_classes()
        )
        assert (
            cluster.await_condition(namespace, "sel", generation=1)["status"]["nodesMatched"] == 1
        )
        assert doc_nodes() == {f"{pool}-big"}
        cluster.patch_spec(namespace, "sel", {"nodeSelector": selector("Lt", "4000")})
        cluster.await_condition(namespace, "sel", generation=2)
        assert doc_nodes() == {f"{pool}-small"}
        # A relabelled node enters the selection: Lt is evaluated on Node events too.
        cluster.label_node(f"{pool}-decimal", {MILLICORES: "1000"})
        eventually(
            lambda: doc_nodes() == {f"{pool}-small", f"{pool}-decimal"} or None,
            what="relabelled node selected by Lt",
        )
