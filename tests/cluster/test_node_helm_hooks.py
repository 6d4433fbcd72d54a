"""The chart's hook pods run for real on the real node (issues 12 and 16 follow-up).

One release per module, with the opt-in prune hook on, on the ``real_node`` of the
session: ``helm test`` passes, then fails naming the problem when the operator is scaled
to 0 and when the CRD is stale; ``helm uninstall`` runs the post-delete prune Job, which
leaves no ``hw.inference.dev/`` label or agent annotation on the Node. Both hook pods
reach the API server as the release's pods do here (host network, ``apiServer``), and the
test Pod reads the operator's /metrics on its loopback address.
(test_node_helm.py uninstalls with prune off: the labels stay.)
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from helm_support import CHART, Helm
from node_support import RealNodeCluster

from inference_thresholds import __version__
from inference_thresholds.api.node_contract import OWNED_LABELS_ANNOTATION, PROFILE_ANNOTATION

pytestmark = [pytest.mark.node, pytest.mark.helm]

RELEASE = "hooks"
NAMESPACE = "ith-hooks"
CRD = "inferencethresholds.thresholds.inference.dev"
OPERATOR = f"{RELEASE}-inference-thresholds-operator"
TEST_HOOK = f"{OPERATOR}-test"
PRUNE_HOOK = f"{RELEASE}-inference-thresholds-node-agent-prune"
HW = "hw.inference.dev/"
FOREIGN_LABEL = "example.com/team"


@dataclass
class Release:
    node: RealNodeCluster
    helm: Helm

    def helm_run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.helm.run(*args, kubeconfig=self.node.kube.kubeconfig, check=check)

    def helm_test(self) -> subprocess.CompletedProcess[str]:
        """`helm test --logs`: the test Pod's phase and its log (one ok/FAIL line per check)."""
        return self.helm_run("test", RELEASE, "-n", NAMESPACE, "--logs", "--timeout=180s",
                             check=False)  # fmt: skip

    def exists(self, *args: str) -> bool:
        result = self.node.kube.kubectl("get", *args, "-o", "name", check=False)
        return result.returncode == 0

    def node_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = self.node.get("node", self.node.node_name)["metadata"]
        return meta


@pytest.fixture(scope="module")
def release(real_node: RealNodeCluster, helm: Helm) -> Iterator[Release]:
    rel = Release(real_node, helm)
    values = real_node.chart_values(agent={"prune": {"enabled": True, "waitTimeoutSeconds": 60}})
    rel.helm_run(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "-f", str(helm.values_file(values)), "--wait", "--timeout=240s",
    )  # fmt: skip
    real_node.kube.eventually(
        lambda: HW + "cpu.usable-cores" in real_node.node_labels(),
        timeout=60,
        what="the agent pod's labels on the node",
    )
    yield rel
    rel.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False)
    real_node.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    real_node.kubectl("label", "node", real_node.node_name, f"{FOREIGN_LABEL}-")


# --- helm test ----------------------------------------------------------------------------


def test_helm_test_passes_from_a_host_network_pod(release: Release) -> None:
    result = release.helm_test()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for check in ("crd", "deployment", "metrics"):
        assert f"ok: {check}" in out, out
    # It ran as the release's pods run here: host network, the apiserver on loopback.
    pod = release.node.get("pod", TEST_HOOK, "-n", NAMESPACE)
    assert pod["status"]["phase"] == "Succeeded"
    spec = pod["spec"]
    assert spec["hostNetwork"] is True and spec["enableServiceLinks"] is False
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    operator = release.node.get("deployment", OPERATOR, "-n", NAMESPACE)["spec"]["template"]
    metrics = next(p for p in operator["spec"]["containers"][0]["ports"] if p["name"] == "metrics")
    assert f"--metrics-url=http://127.0.0.1:{metrics['containerPort']}/metrics" in container["args"]
    # Its grants are gone once it has run; the Pod (the result) stays until the next run.
    for kind in ("serviceaccount", "role", "rolebinding"):
        assert not release.exists(kind, TEST_HOOK, "-n", NAMESPACE), kind
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not release.exists(kind, TEST_HOOK), kind


def test_helm_test_fails_naming_an_operator_scaled_to_zero(release: Release) -> None:
    node = release.node
    node.kubectl("scale", "deployment", OPERATOR, "-n", NAMESPACE, "--replicas=0")
    try:
        node.kube.eventually(
            lambda: not node.pods(NAMESPACE, "app.kubernetes.io/component=operator"),
            timeout=120,
            what="the operator pod gone",
        )
        result = release.helm_test()
        out = result.stdout + result.stderr
        assert result.returncode != 0, out
        assert "ok: crd" in out, out
        assert (
            f"FAIL: deployment: Deployment {NAMESPACE}/{OPERATOR} is scaled to 0 replicas" in out
        ), out
        assert "FAIL: metrics: http://127.0.0.1:" in out, out
        assert node.get("pod", TEST_HOOK, "-n", NAMESPACE)["status"]["phase"] == "Failed"
    finally:
        node.kubectl("scale", "deployment", OPERATOR, "-n", NAMESPACE, "--replicas=1")
        node.ready_pod(NAMESPACE, "app.kubernetes.io/component=operator", timeout=180)


def _crd_applier(crd: dict[str, Any]) -> str:
    """The field manager that applied the CRD (Helm, server-side), to apply as it did."""
    for entry in crd["metadata"].get("managedFields") or []:
        if entry.get("operation") == "Apply":
            return str(entry["manager"])
    raise AssertionError(f"no server-side applier of {CRD}: {crd['metadata'].get('managedFields')}")


def test_helm_test_fails_naming_a_stale_crd(release: Release) -> None:
    """An older CRD (a spec field it does not know yet) left by `helm upgrade`."""
    node = release.node
    current: dict[str, Any] = yaml.safe_load((CHART / "crds" / f"{CRD}.yaml").read_text())
    manager = _crd_applier(node.get("crd", CRD, "--show-managed-fields"))
    stale = json.loads(json.dumps(current))
    spec = stale["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["adaptation"]

    def apply(doc: dict[str, Any]) -> None:
        node.kubectl("apply", "--server-side", "--force-conflicts", f"--field-manager={manager}",
                     "-f", "-", input=yaml.safe_dump(doc))  # fmt: skip
        node.kube.wait_crd_established(CRD, timeout=60)

    apply(stale)
    try:
        result = release.helm_test()
        out = result.stdout + result.stderr
        assert result.returncode != 0, out
        assert "ok: deployment" in out and "ok: metrics" in out, out
        assert (
            f"FAIL: crd: CRD {CRD} is not the one this operator ({__version__}) was built with: "
            "Helm does not upgrade CRDs; kubectl apply --server-side -f crds/"
        ) in out, out
    finally:
        apply(current)
    assert release.helm_test().returncode == 0, "the current CRD passes again"


# --- helm uninstall with agent.prune.enabled ---------------------------------------------------


def test_uninstall_with_prune_leaves_no_agent_labels_or_annotations(release: Release) -> None:
    node = release.node
    node.kubectl("label", "node", node.node_name, f"{FOREIGN_LABEL}=ml", "--overwrite")
    before = release.node_metadata()
    owned = before["annotations"][OWNED_LABELS_ANNOTATION].split(",")
    assert len(owned) > 3 and all(k in before["labels"] for k in owned)
    assert PROFILE_ANNOTATION in before["annotations"]

    # The post-delete Job runs within `helm uninstall`, which waits for it.
    release.helm_run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", "--timeout=240s")
    after = release.node_metadata()
    assert not [k for k in after.get("labels") or {} if k.startswith(HW)], after["labels"]
    assert not [k for k in after.get("annotations") or {} if k.startswith(HW)]
    assert after["labels"][FOREIGN_LABEL] == "ml", "other labels stay"
    assert after["labels"]["kubernetes.io/hostname"] == node.node_name

    # Nothing keeps running, and no hook grant outlives it: the Job, its ServiceAccount
    # and RBAC went once it succeeded. Only the last `helm test` Pod (finished) stays, as
    # Helm leaves hook objects (README: what stays).
    node.kube.eventually(
        lambda: all(
            p["metadata"]["name"] == TEST_HOOK for p in node.get("pods", "-n", NAMESPACE)["items"]
        ),
        timeout=120,
        what="the release's and the prune Job's pods gone",
    )
    assert node.get("pod", TEST_HOOK, "-n", NAMESPACE)["status"]["phase"] == "Succeeded"
    assert not release.exists("job", PRUNE_HOOK, "-n", NAMESPACE)
    for kind in ("serviceaccount", "role", "rolebinding"):
        assert not release.exists(kind, PRUNE_HOOK, "-n", NAMESPACE), kind
    for kind in ("clusterrole", "clusterrolebinding"):
        assert not release.exists(kind, PRUNE_HOOK), kind
