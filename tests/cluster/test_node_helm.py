"""The chart installed for real on a real node, from images built here (issue 12, items 3-6).

One release per module, in test order: install (both pods Ready through their probes, the
agent labels the node from its container, metrics answer), a workload pod consuming the
thresholds (and a CR update reaching its mounted file), detection in a CPU-limited
container, then the faults: operator pod deleted, agent pod killed, ``helm upgrade`` to
a new image tag, ``helm uninstall``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_support import CHART, Helm
from node_support import RealNodeCluster, metric, pod_ready, scrape

from inference_thresholds.api.thresholds_document import ThresholdsDocument
from inference_thresholds_dev.local_chart import client_deployment, host_network_pod

pytestmark = [pytest.mark.node, pytest.mark.helm]

# The README's release name: named like the chart, so objects are "inference-thresholds-*".
RELEASE = "inference-thresholds"
NAMESPACE = "inference-thresholds"
CRD = "inferencethresholds.thresholds.inference.dev"
OPERATOR = "app.kubernetes.io/component=operator"
AGENT = "app.kubernetes.io/component=node-agent"
HW = "hw.inference.dev/"
CR_NAME = "bitnet-edge"
CM_NAME = "bitnet-edge-thresholds"


@dataclass
class Release:
    node: RealNodeCluster
    helm: Helm
    values: dict[str, Any]
    workload_ns: str
    # Seconds from `helm install` to: "configmap" (the CR's ConfigMap written; the CR is
    # applied as soon as the CRD is established), "pods-ready" (helm --wait returned).
    timings: dict[str, float] = field(default_factory=dict)

    def helm_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.helm.run(*args, kubeconfig=self.node.kube.kubeconfig, check=check)

    def operator_metrics(self) -> str:
        return scrape(int(self.values["operator"]["metrics"]["port"]))

    def agent_metrics(self) -> str:
        return scrape(int(self.values["agent"]["metrics"]["port"]))

    def configmap(self) -> dict[str, Any]:
        return self.node.get("configmap", CM_NAME, "-n", self.workload_ns)

    def await_reconciled(self, who: str) -> None:
        """Until the operator pod's metrics show the CR reconciled (after a restart)."""
        self.node.kube.eventually(
            lambda: metric(
                self.operator_metrics(), "inference_thresholds_nodes_matched",
                namespace=self.workload_ns, name=CR_NAME,
            ) is not None,
            timeout=60,
            what=f"{who} reconciled the CR",
        )  # fmt: skip


def bitnet_edge_cr(namespace: str, node: str) -> dict[str, Any]:
    """examples/bitnet-edge-cpu.yaml, selecting the real node by its hostname label."""
    root = Path(__file__).resolve().parents[2]
    doc: dict[str, Any] = yaml.safe_load((root / "examples" / "bitnet-edge-cpu.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["nodeSelector"] = {"matchLabels": {"kubernetes.io/hostname": node}}
    return doc


def forget_agent(node: RealNodeCluster) -> None:
    """Remove every hw.inference.dev label and annotation from the node."""
    metadata = node.get("node", node.node_name)["metadata"]
    patch = {
        kind: {key: None for key in metadata.get(kind) or {} if key.startswith(HW)}
        for kind in ("labels", "annotations")
    }
    node.kubectl("patch", "node", node.node_name, "--type=merge",
                 "-p", json.dumps({"metadata": patch}))  # fmt: skip


@pytest.fixture(scope="module")
def release(real_node: RealNodeCluster, helm: Helm) -> Iterator[Release]:
    workload_ns = f"workload-{uuid.uuid4().hex[:6]}"
    values = real_node.chart_values()
    rel = Release(real_node, helm, values, workload_ns)
    # The node is shared by the session's real-node modules: an agent installed by an
    # earlier one left its labels. Start from a node the agent has never seen, so what
    # the pod publishes is its own work (its write counter proves it).
    forget_agent(real_node)
    real_node.kubectl("create", "namespace", workload_ns)
    argv = [
        helm.binary, "install", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--create-namespace", "-f", str(helm.values_file(values)), "--wait",
        "--timeout=240s", f"--kubeconfig={real_node.kube.kubeconfig}",
    ]  # fmt: skip
    env = {**os.environ, "HELM_CACHE_HOME": str(helm.workdir / "cache"),
           "HELM_CONFIG_HOME": str(helm.workdir / "config"),
           "HELM_DATA_HOME": str(helm.workdir / "data")}  # fmt: skip
    began = time.monotonic()
    install = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # Apply the CR as soon as the chart's CRD exists: install -> first ConfigMap.
        real_node.kube.eventually(
            lambda: real_node.kube.kubectl("get", "crd", CRD, check=False).returncode == 0,
            timeout=120,
            interval=0.2,
            what="the chart's CRD created",
        )
        real_node.kube.wait_crd_established(CRD, timeout=60)
        cr = bitnet_edge_cr(workload_ns, real_node.node_name)
        real_node.kubectl("apply", "-f", "-", input=yaml.safe_dump(cr))
        real_node.kube.eventually(
            lambda: (
                real_node.kube.kubectl(
                    "get", "configmap", CM_NAME, "-n", workload_ns, check=False
                ).returncode
                == 0
            ),
            timeout=180,
            interval=0.2,
            what=f"ConfigMap {CM_NAME} after helm install",
        )
        rel.timings["configmap"] = time.monotonic() - began
        out, err = install.communicate(timeout=300)
        rel.timings["pods-ready"] = time.monotonic() - began
        assert install.returncode == 0, err.decode() + out.decode()
    finally:
        if install.poll() is None:
            install.kill()
            install.wait()
    print(f"helm install -> ConfigMap {rel.timings['configmap']:.1f} s, "
          f"-> pods Ready (--wait) {rel.timings['pods-ready']:.1f} s")  # fmt: skip
    yield rel
    rel.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    real_node.kubectl("delete", "namespace", workload_ns, "--wait=false")


# --- item 3: install -------------------------------------------------------------------------


def test_both_pods_run_from_local_images_ready_through_their_probes(release: Release) -> None:
    node = release.node
    for selector, component, image in (
        (OPERATOR, "operator", node.images["operator"]),
        (AGENT, "node-agent", node.images["node-agent"]),
    ):
        pod = node.ready_pod(NAMESPACE, selector)
        spec = pod["spec"]
        # Its own ServiceAccount (the chart's, with the chart's RBAC), not `default`.
        assert spec["serviceAccountName"] == f"inference-thresholds-{component}"
        (container,) = spec["containers"]
        assert container["image"] == image.ref and container["imagePullPolicy"] == "Never"
        (status,) = pod["status"]["containerStatuses"]
        assert status["ready"] is True and status["restartCount"] == 0, status
        assert status["imageID"], "the kubelet ran a real image"
        # Ready came from real HTTP probes against the pod's loopback-bound server.
        probes = [container.get(p) for p in ("readinessProbe", "startupProbe")]
        http = [p["httpGet"] for p in probes if p]
        assert http and all(h["host"] == "127.0.0.1" for h in http), http
        # The restricted-style container settings survive the local values.
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_agent_pod_labels_its_node_from_inside_its_container(release: Release) -> None:
    node = release.node
    labels = node.kube.eventually(
        lambda: (lbl := node.node_labels()).get(HW + "cpu.usable-cores") and lbl,
        timeout=60,
        what="hw.inference.dev labels on the node",
    )
    # The agent reports the node (scope "node"): all of this machine's CPUs.
    assert labels[HW + "cpu.usable-cores"] == str(os.cpu_count())
    cpuinfo = Path("/proc/cpuinfo").read_text()
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    if vendor and vendor.group(1) in ("GenuineIntel", "AuthenticAMD"):
        assert (
            labels[HW + "cpu.vendor"]
            == {"GenuineIntel": "intel", "AuthenticAMD": "amd"}[vendor.group(1)]
        )
    # With the chart's defaults the agent does not guess the bandwidth of a CPU no table
    # knows (this VM's): its bounded probe fits the default memory limit and measures it.
    assert labels[HW + "memory.bandwidth-source"] in ("spec", "measured"), labels
    # The writes came from the pod: its metrics count the detection and the Node PATCH.
    text = release.agent_metrics()
    assert (metric(text, "inference_thresholds_agent_detections_total", result="ok") or 0) >= 1
    assert (metric(text, "inference_thresholds_agent_node_writes_total") or 0) >= 1


def test_metrics_endpoints_answer(release: Release) -> None:
    operator = release.operator_metrics()
    assert "inference_thresholds_reconciles_total" in operator
    agent = release.agent_metrics()
    assert "inference_thresholds_agent_last_success_timestamp_seconds" in agent


def test_first_configmap_after_install(release: Release) -> None:
    cr = release.node.get("ith", CR_NAME, "-n", release.workload_ns)
    ready = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    doc = json.loads(release.configmap()["data"]["thresholds.json"])
    assert release.node.node_name in ThresholdsDocument.model_validate(doc).node_classes()
    assert release.timings["configmap"] < 240


# --- item 4: a workload pod consumes the thresholds -------------------------------------------


def test_workload_pod_validates_and_sees_a_cr_update(release: Release) -> None:
    node, ns = release.node, release.workload_ns
    client = client_deployment("bitnet-edge-client", ns, node.images["operator"].ref, CM_NAME)
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(client))
    pod = node.ready_pod(ns, "app=bitnet-edge-client")["metadata"]["name"]

    def logs() -> str:
        return node.logs(ns, pod)

    first = node.kube.eventually(
        lambda: "exit status" in (text := logs()) and text, timeout=60, what="client check"
    )
    assert f"NODE_NAME={node.node_name}" in first
    assert "check: PASS" in first and "exit status 0" in first, first
    assert "generation 1)" in first, first  # the document the operator wrote
    assert re.search(r"BITNET_MAX_MEMORY_MB=\d+", first), "envFrom gave the legacy variables"

    # A CR update reaches the mounted file (kubelet's ConfigMap volume sync, awaited) and
    # the pod's check: the envFrom variables keep their start-up value, and must not win.
    started = re.search(r"BITNET_MAX_MEMORY_MB=([0-9.]+)", first).group(1)  # type: ignore[union-attr]
    limit = 2048 if float(started) != 2048 else 1536
    patch = {"spec": {"overrides": {"maxMemoryUsageMb": limit}}}
    node.kubectl("patch", "ith", CR_NAME, "-n", ns, "--type=merge", "-p", json.dumps(patch))
    updated = node.kube.eventually(
        lambda: "exit status" in (text := logs()).partition("generation 2)")[2] and text,
        timeout=120,
        what="the client re-checking the updated thresholds in its mounted file",
    )
    head, _, check = updated.partition("generation 2)")
    assert "exit status 0" in check, updated
    env_line = head[head.rindex("--- NODE_NAME") :].splitlines()[0]
    assert f"BITNET_MAX_MEMORY_MB={started}" in env_line, "envFrom kept its start-up value"
    lines = check.splitlines()
    at = next(i for i, line in enumerate(lines) if "max_memory_usage_mb" in line)
    assert f"<= maximum {limit} MiB" in lines[at], check
    assert "from class " in lines[at + 1], check
    assert (
        "env from an older ConfigMap (INFERENCE_THRESHOLDS_CONTENT_HASH" in check
        and f"BITNET_MAX_MEMORY_MB={started}, now {limit}" in check
        and "restart the pod to refresh its environment" in check
    ), check
    # The file itself carries the new limit.
    read = (
        "import json; d = json.load(open('/etc/inference-thresholds/thresholds.json')); "
        f"c = next(c for c in d['classes'].values() if {node.node_name!r} in c['nodes']); "
        "print(c['thresholds']['maxMemoryUsageMb'])"
    )
    assert float(node.kubectl("exec", "-n", ns, pod, "--", "python", "-c", read)) == limit


# --- item 5: cgroup-aware detection in a container --------------------------------------------


def test_detection_in_a_cpu_limited_container_reports_the_limit(release: Release) -> None:
    node = release.node
    name = f"detect-{uuid.uuid4().hex[:6]}"
    pod = host_network_pod(
        name,
        release.workload_ns,
        node.images["node-agent"].ref,
        restart="Never",
        args=["detect", "--output", "json"],
        # 0.5 CPU: below this machine's cores whatever their number.
        resources={"limits": {"cpu": "500m", "memory": "256Mi"}},
    )
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod))
    node.await_phase(release.workload_ns, name, "Succeeded", "Failed")
    output = node.logs(release.workload_ns, name)
    profile = json.loads(output[output.index("{") :])
    cpu = profile["cpu"]
    assert cpu["logicalCores"] == os.cpu_count(), cpu
    assert cpu["usableCores"] == 0.5, cpu


# --- item 6: faults ---------------------------------------------------------------------------


def _snapshot(release: Release) -> dict[str, str]:
    """resourceVersions of the CR and its ConfigMap, and the Event count."""
    node, ns = release.node, release.workload_ns
    return {
        "cr": node.get("ith", CR_NAME, "-n", ns)["metadata"]["resourceVersion"],
        "cm": release.configmap()["metadata"]["resourceVersion"],
        "events": str(len(node.get("events", "-n", ns)["items"])),
    }


def test_operator_pod_deleted_new_pod_resumes_without_writes(release: Release) -> None:
    node = release.node
    before_pod = node.ready_pod(NAMESPACE, OPERATOR)["metadata"]["name"]
    before = node.kube.eventually(
        lambda: (s := _snapshot(release)) == _snapshot(release) and s, what="settled"
    )
    node.kubectl("delete", "pod", before_pod, "-n", NAMESPACE, "--wait=false")
    after_pod = node.kube.eventually(
        lambda: (p := node.ready_pod(NAMESPACE, OPERATOR))["metadata"]["name"] != before_pod and p,
        timeout=180,
        what="a new operator pod Ready",
    )["metadata"]["name"]
    assert after_pod != before_pod

    release.await_reconciled("the new operator pod")
    text = release.operator_metrics()
    assert "inference_thresholds_configmap_writes_total{" not in text, "no ConfigMap write"
    assert _snapshot(release) == before


def test_agent_pod_killed_is_restarted_without_churn(release: Release) -> None:
    node = release.node
    old = node.ready_pod(NAMESPACE, AGENT)["metadata"]["name"]
    labels = {k: v for k, v in node.node_labels().items() if k.startswith(HW)}
    node.kubectl("delete", "pod", old, "-n", NAMESPACE, "--grace-period=0", "--force")
    new = node.kube.eventually(
        lambda: (p := node.ready_pod(NAMESPACE, AGENT))["metadata"]["name"] != old and p,
        timeout=120,
        what="the DaemonSet's new agent pod Ready",
    )
    assert new["metadata"]["name"] != old
    # Ready means its first pass published or found nothing to change: nothing changed.
    text = release.agent_metrics()
    assert (metric(text, "inference_thresholds_agent_detections_total", result="ok") or 0) >= 1
    assert metric(text, "inference_thresholds_agent_node_writes_total") == 0, "no churn"
    assert {k: v for k, v in node.node_labels().items() if k.startswith(HW)} == labels


def test_helm_upgrade_to_a_new_image_tag_keeps_the_thresholds(release: Release) -> None:
    node = release.node
    before = release.configmap()
    tag = f"{node.images['operator'].tag}-upgrade"
    for name in ("operator", "node-agent"):
        image = node.images[name]
        node.node.tag_image(image.ref, f"{image.repository}:{tag}")
    release.helm_run(
        "upgrade", RELEASE, str(CHART), "-n", NAMESPACE, "--reuse-values",
        "--set", f"operator.image.tag={tag}", "--set", f"agent.image.tag={tag}",
        "--wait", "--timeout=240s",
    )  # fmt: skip
    for selector in (OPERATOR, AGENT):
        pod = node.ready_pod(NAMESPACE, selector)
        assert pod["spec"]["containers"][0]["image"].endswith(f":{tag}")
        assert pod_ready(pod)

    release.await_reconciled("the upgraded operator")
    after = release.configmap()
    assert after["data"] == before["data"]
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_helm_uninstall_leaves_nothing_running(release: Release) -> None:
    node = release.node
    release.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=120s")
    node.kube.eventually(
        lambda: not node.get("pods", "-n", NAMESPACE)["items"],
        timeout=120,
        what="the release's pods gone",
    )
    for kind in ("deployments", "daemonsets", "services", "serviceaccounts"):
        left = [
            o["metadata"]["name"]
            for o in node.get(kind, "-n", NAMESPACE)["items"]
            if o["metadata"]["name"] != "default"
        ]
        assert left == [], f"{kind} left: {left}"
    # What stays, as the README documents: the CRD (Helm never deletes CRDs), so the CRs
    # and the ConfigMaps they own; and, with agent.prune off (the default), the agent's
    # labels on the Node (test_node_helm_hooks.py uninstalls with prune on: none stay).
    assert node.get("crd", CRD)["metadata"]["name"] == CRD
    assert node.get("ith", CR_NAME, "-n", release.workload_ns)
    assert release.configmap()["data"]["thresholds.json"]
    assert any(k.startswith(HW) for k in node.node_labels())
