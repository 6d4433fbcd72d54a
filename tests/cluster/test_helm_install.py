"""The chart against a real kube-apiserver: dry-run, install, the operator and the agent
running with exactly the chart's service accounts and RBAC, upgrade and uninstall.

There is no kubelet here: the chart's workloads are created (the ReplicaSet controller makes
the operator's Pod, which Pod Security "restricted" admits) but never run. Instead the tests
run the real CLI as local processes with the container args the chart renders, authenticated
with TokenRequest tokens of the chart's ServiceAccounts (the agent's bound to a Pod made from
the DaemonSet's template on a Node, as the kubelet would have it).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_support import (
    ALL_ON_VALUES,
    CHART,
    CLI,
    CRD_NAME,
    MONITORING_CRDS,
    ROOT,
    Helm,
    Release,
    chart_operator,
    find,
    forbidden,
    install,
    kubectl,
    make_helm,
    token_kubeconfig,
)
from kubernetes import client
from kubernetes.client import ApiException
from operator_harness import A100_LABELS, Cluster

from inference_thresholds.engine import load_policy
from inference_thresholds_dev.cluster.access import ClusterAccess

pytestmark = pytest.mark.helm

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


def denied_by_policy(call: Any) -> str:
    """Refused by the chart's ValidatingAdmissionPolicy (422 Invalid: the policy sets no
    reason); returns the message."""
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status in (403, 422), raised.value.body
    message = str(json.loads(raised.value.body or "{}").get("message", ""))
    assert "ValidatingAdmissionPolicy" in message, message
    return message


# --- server-side dry-run ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring_crds(kube: ClusterAccess) -> Iterator[None]:
    """Stand-in ServiceMonitor/PrometheusRule CRDs (see the fixture file's header)."""
    kubectl(kube, "apply", "--server-side", "-f", str(MONITORING_CRDS))
    for crd in ("servicemonitors", "prometheusrules"):
        kube.wait_crd_established(f"{crd}.monitoring.coreos.com")
    yield
    kubectl(kube, "delete", "--ignore-not-found", "--wait=false", "-f", str(MONITORING_CRDS))


@pytest.mark.parametrize("case", ["defaults", "all-on", "watch-namespaces"])
def test_rendered_manifests_pass_server_side_dry_run(
    kube: ClusterAccess, helm: Helm, namespace: str, monitoring_crds: None, case: str
) -> None:
    values = {
        "defaults": {},
        "all-on": ALL_ON_VALUES,
        "watch-namespaces": {"operator": {"watchNamespaces": [namespace, "default"]}},
    }[case]
    manifest = helm.template(values, release=f"dry-{case}", namespace=namespace)
    documents = [d for d in yaml.safe_load_all(manifest) if d]
    result = kubectl(
        kube, "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=manifest
    )
    accepted = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    assert len(accepted) == len(documents), result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr


# --- install ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def release(kube: ClusterAccess, helm: Helm) -> Iterator[Release]:
    """The chart with default values, in a namespace enforcing Pod Security "restricted"."""
    with kube.temporary_namespace("helm") as namespace:
        kubectl(kube, "label", "namespace", namespace, *[f"{k}={v}" for k, v in RESTRICTED.items()])
        name = f"it-{namespace[-8:]}"
        installed = install(kube, helm, name, namespace)
        yield installed
        helm.run("uninstall", name, "--namespace", namespace, kubeconfig=kube.kubeconfig,
                 check=False)  # fmt: skip


def test_install_establishes_the_crd_and_creates_every_object(
    kube: ClusterAccess, release: Release
) -> None:
    kube.wait_crd_established(CRD_NAME, timeout=30)
    listed = kubectl(kube, "get", "-f", "-", "-o", "name",
                     input=yaml.safe_dump_all(release.objects)).stdout.split()  # fmt: skip
    assert len(listed) == len(release.objects), listed
    kinds = {o["kind"] for o in release.objects}
    assert {"ClusterRole", "ClusterRoleBinding", "ServiceAccount",
            "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} <= kinds  # fmt: skip


def test_operator_pod_is_admitted_under_pod_security_restricted(
    kube: ClusterAccess, release: Release
) -> None:
    """The ReplicaSet controller creates the Pod; PodSecurity would refuse a non-compliant one."""
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        selector = "app.kubernetes.io/component=operator,app.kubernetes.io/instance=" + release.name

        def created() -> list[Any]:
            return list(core.list_namespaced_pod(release.namespace, label_selector=selector).items)

        (pod,) = kube.eventually(created, timeout=60, what="operator Pod created")
        assert pod.spec.service_account_name == release.service_account("-operator")
        events = core.list_namespaced_event(release.namespace).items
        refused = [e.message for e in events if e.reason == "FailedCreate"]
        assert not refused, refused


def test_example_and_notes_resources_are_accepted(
    kube: ClusterAccess, helm: Helm, release: Release
) -> None:
    crs = [
        doc
        for path in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and doc["kind"] == "InferenceThresholds"
    ]
    notes = helm.run("get", "notes", release.name, "--namespace", release.namespace,
                     kubeconfig=kube.kubeconfig).stdout  # fmt: skip
    # The example NOTES.txt tells the user to apply.
    block = notes.split("cat <<'YAML' | kubectl apply -f -\n", 1)[1].split("     YAML\n", 1)[0]
    crs.append(yaml.safe_load("\n".join(line[5:] for line in block.splitlines())))
    assert len(crs) >= 2
    for doc in crs:
        doc = copy.deepcopy(doc)
        doc["metadata"]["namespace"] = release.namespace
        kubectl(kube, "apply", "--dry-run=server", "--validate=strict", "-f", "-",
                input=yaml.safe_dump(doc))  # fmt: skip


# --- the operator with the chart's service account ------------------------------------------


def _release_object(kube: ClusterAccess, namespace: str, release: str, kind: str) -> Any:
    """The one object of ``kind`` that release ``release`` created in ``namespace``."""
    listed = kubectl(
        kube, "get", kind, "-n", namespace, "-o", "json",
        "-l", f"app.kubernetes.io/instance={release}",
    ).stdout  # fmt: skip
    return json.loads(listed)["items"][0]


def _gpu_cr(suffix: str) -> dict[str, Any]:
    return {
        "nodeSelector": {"matchLabels": {"helm-test": suffix}},
        "model": {"preset": "llama-3.1-8b", "runtime": "vllm"},
        "context": {"environment": "production"},
    }


def test_operator_reconciles_with_exactly_the_chart_permissions(
    kube: ClusterAccess, release: Release, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    node, cr, cm = f"helm-gpu-{suffix}", f"helm-{suffix}", f"helm-{suffix}-thresholds"
    cluster = Cluster(kube)
    can_i = ("watch", CRD_NAME, "--all-namespaces")
    try:
        cluster.create_node(node, {**A100_LABELS, "helm-test": suffix})
        with chart_operator(kube, release, tmp_path, can_i) as operator:
            cluster.create_cr(release.namespace, cr, _gpu_cr(suffix))
            done = cluster.await_condition(release.namespace, cr, "Ready", "True", timeout=60)
            assert done["status"]["nodesMatched"] == 1
            configmap = cluster.cm(release.namespace, cm)
            owners = configmap["metadata"]["ownerReferences"]
            assert [o["name"] for o in owners] == [cr]
            assert configmap["data"]["BITNET_MIN_TOKENS_PER_SECOND"]
            assert cluster.event_reasons(release.namespace, cr), "no decision Events posted"

            # Outside the chart's grants the same token gets 403s.
            with kube.api_client(token=operator.token) as api:
                core = client.CoreV1Api(api)
                forbidden(lambda: core.delete_node(node))
                forbidden(lambda: core.patch_node(node, {"metadata": {"labels": {"x": "y"}}}))
                forbidden(lambda: core.list_namespaced_secret(release.namespace))
                forbidden(lambda: core.list_secret_for_all_namespaces())
                # delete: only its own ConfigMaps, one by one (a renamed one); never in bulk
                forbidden(lambda: core.delete_collection_namespaced_config_map(release.namespace))
                forbidden(lambda: core.create_namespaced_pod(release.namespace, {
                    "metadata": {"name": "x"},
                    "spec": {"containers": [{"name": "x", "image": "x"}]},
                }))  # fmt: skip
                rbac = client.RbacAuthorizationV1Api(api)
                forbidden(lambda: rbac.create_cluster_role_binding({
                    "metadata": {"name": f"escalate-{suffix}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": "cluster-admin"},
                    "subjects": [{"kind": "ServiceAccount", "name": operator.service_account,
                                  "namespace": release.namespace}],
                }))  # fmt: skip

            cluster.delete_cr(release.namespace, cr)  # no finalizer: gone at once
            kube.eventually(lambda: cluster.get_cr(release.namespace, cr) is None, timeout=30,
                            what="CR deleted")  # fmt: skip
        operator.assert_never_refused()
    finally:
        cluster.delete_node(node)
        cluster.close()


def test_operator_confined_to_watch_namespaces_by_roles(
    kube: ClusterAccess, helm: Helm, tmp_path: Path
) -> None:
    """operator.watchNamespaces: Roles in those namespaces only (and the leader-election
    Role on leases alone in its own); it works there and cannot read or write CRs or
    ConfigMaps anywhere else."""
    suffix = uuid.uuid4().hex[:6]
    node, cr, cm = f"helm-gpu-{suffix}", f"helm-{suffix}", f"helm-{suffix}-thresholds"
    cluster = Cluster(kube)
    with kube.temporary_namespace("helm") as home, kube.temporary_namespace("app") as app:
        name = f"ns-{home[-8:]}"
        release = install(kube, helm, name, home, "--set", f"operator.watchNamespaces={{{app}}}")
        roles = [o for o in release.objects if o["kind"] == "Role"]
        lease = [o for o in roles if o["metadata"]["name"].endswith("-leader-election")]
        assert [o["metadata"]["namespace"] for o in roles if o not in lease] == [app]
        assert [o["metadata"]["namespace"] for o in lease] == [home]
        assert {r for o in lease for rule in o["rules"] for r in rule["resources"]} == {"leases"}
        try:
            cluster.create_node(node, {**A100_LABELS, "helm-test": suffix})
            can_i = ("watch", CRD_NAME, "-n", app)
            with chart_operator(kube, release, tmp_path, can_i) as operator:
                cluster.create_cr(app, cr, _gpu_cr(suffix))
                cluster.await_condition(app, cr, "Ready", "True", timeout=60)
                assert cluster.cm(app, cm)["metadata"]["ownerReferences"][0]["name"] == cr
                with kube.api_client(token=operator.token) as api:
                    core = client.CoreV1Api(api)
                    custom = client.CustomObjectsApi(api)
                    api_version = ("thresholds.inference.dev", "v1alpha1")
                    forbidden(lambda: custom.list_namespaced_custom_object(
                        *api_version, home, "inferencethresholds"))  # fmt: skip
                    forbidden(lambda: custom.list_cluster_custom_object(
                        *api_version, "inferencethresholds"))  # fmt: skip
                    forbidden(lambda: core.list_namespaced_config_map(home))
                    forbidden(lambda: core.create_namespaced_config_map(
                        home, {"metadata": {"name": "x"}}))  # fmt: skip
                cluster.delete_cr(app, cr)
                kube.eventually(lambda: cluster.get_cr(app, cr) is None, timeout=30,
                                what="CR deleted")  # fmt: skip
            operator.assert_never_refused()
        finally:
            helm.run("uninstall", name, "--namespace", home, kubeconfig=kube.kubeconfig,
                     check=False)  # fmt: skip
            cluster.delete_node(node)
            cluster.close()


# --- the node agent with the chart's service account -----------------------------------------


def test_agent_labels_its_own_node_and_nothing_else(
    kube: ClusterAccess, release: Release, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    node_a, node_b, pod_name = f"helm-a-{suffix}", f"helm-b-{suffix}", f"agent-{suffix}"
    cluster = Cluster(kube)
    try:
        cluster.create_node(node_a, {"team": "ml"})
        cluster.create_node(node_b, {"team": "ml"})
        # The DaemonSet's Pod on node A, as its controller and the scheduler would make it.
        spec = copy.deepcopy(release.pod_spec("DaemonSet"))
        spec["nodeName"] = node_a
        cluster.core.create_namespaced_pod(
            release.namespace,
            {"metadata": {"name": pod_name}, "spec": spec},  # type: ignore[arg-type]
        )  # admitted by PodSecurity "restricted" in this namespace
        sa = release.service_account("-node-agent")
        token = kube.service_account_token(release.namespace, sa, pod=pod_name)
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        assert claims["kubernetes.io"]["node"]["name"] == node_a
        kubeconfig = token_kubeconfig(kube, token, tmp_path / "agent.kubeconfig")

        with kube.api_client(token=token) as api:
            core = client.CoreV1Api(api)
            probe = {"metadata": {"labels": {"example.com/probe": "x"}}}

            def policy_enforced() -> bool:
                try:
                    core.patch_node(node_a, probe, dry_run="All")
                except ApiException as exc:
                    return exc.status in (403, 422) and "ValidatingAdmissionPolicy" in str(exc.body)
                return False

            kube.eventually(policy_enforced, timeout=60, what="the chart's admission policy")

            (container,) = spec["containers"]
            args = [a.replace("$(NODE_NAME)", node_a) for a in container["args"]]
            env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
            env["NODE_NAME"] = node_a
            result = subprocess.run(
                [CLI, *args, "--once", f"--kubeconfig={kubeconfig}"],
                capture_output=True, text=True, env=env, timeout=120,
            )  # fmt: skip
            assert result.returncode == 0, result.stdout + result.stderr
            labels = cluster.core.read_node(node_a).metadata.labels
            ours = {k for k in labels if k.startswith("hw.inference.dev/")}
            assert "hw.inference.dev/cpu.logical-cores" in ours or len(ours) >= 3, labels
            assert labels["team"] == "ml"

            # The token can touch neither another Node nor anyone else's keys, nor delete.
            other = {"metadata": {"labels": {"hw.inference.dev/cpu.usable-cores": "999"}}}
            message = denied_by_policy(lambda: core.patch_node(node_b, other))
            assert "only the Node its pod runs on" in message
            message = denied_by_policy(
                lambda: core.patch_node(node_a, {"metadata": {"labels": {"team": "x"}}})
            )
            assert "only hw.inference.dev/ labels" in message
            forbidden(lambda: core.delete_node(node_a))
            forbidden(lambda: core.list_node())
            forbidden(lambda: core.list_namespaced_secret(release.namespace))
    finally:
        with contextlib.suppress(ApiException):
            cluster.core.delete_namespaced_pod(pod_name, release.namespace, grace_period_seconds=0)
        cluster.delete_node(node_a)
        cluster.delete_node(node_b)
        cluster.close()


# --- upgrade and uninstall -------------------------------------------------------------------


def test_upgrade_then_uninstall_keeps_the_crd_and_custom_resources(
    kube: ClusterAccess, helm: Helm, namespace: str
) -> None:
    name = f"up-{namespace[-8:]}"
    first = install(kube, helm, name, namespace)
    assert find(first.objects, "DaemonSet")  # sanity
    cluster = Cluster(kube)
    try:
        cluster.create_cr(namespace, "kept", {"model": {"preset": "llama-3.1-8b"}})
        values = helm.values_file(
            {"agent": {"interval": 120}, "operator": {"policy": {"maxFloor": 0.85}}}
        )
        helm.run("upgrade", name, str(CHART), "--namespace", namespace, "-f", str(values),
                 kubeconfig=kube.kubeconfig)  # fmt: skip
        status = json.loads(helm.run("status", name, "--namespace", namespace, "-o", "json",
                                     kubeconfig=kube.kubeconfig).stdout)  # fmt: skip
        assert status["version"] == 2 and status["info"]["status"] == "deployed"

        ds = _release_object(kube, namespace, name, "daemonset")
        assert "--interval=120" in ds["spec"]["template"]["spec"]["containers"][0]["args"]
        policy_cm = cluster.cm(namespace, f"{name}-inference-thresholds-operator-policy")
        policy_file = Path(helm.workdir / f"{name}-policy.yaml")
        policy_file.write_text(policy_cm["data"]["policy.yaml"])
        assert load_policy(policy_file).max_floor == 0.85  # the engine reads what the chart wrote
        deploy = _release_object(kube, namespace, name, "deployment")
        args = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        assert any(a.startswith("--policy=") for a in args)

        helm.run("uninstall", name, "--namespace", namespace, kubeconfig=kube.kubeconfig)
        left = kubectl(kube, "get", "-f", "-", "--ignore-not-found", "-o", "name",
                       input=yaml.safe_dump_all(first.objects)).stdout  # fmt: skip
        assert not left.strip(), f"left behind by helm uninstall: {left}"
        assert not cluster.configmap(namespace, f"{name}-inference-thresholds-operator-policy")
        # Helm's CRD policy: crds/ is installed once and never deleted, so custom
        # resources (and the ConfigMaps they own) survive an uninstall.
        kubectl(kube, "get", "crd", CRD_NAME)
        kept = cluster.cr(namespace, "kept")
        assert kept["spec"]["model"]["preset"] == "llama-3.1-8b"
    finally:
        with contextlib.suppress(ApiException):
            cluster.delete_cr(namespace, "kept")
        cluster.close()
