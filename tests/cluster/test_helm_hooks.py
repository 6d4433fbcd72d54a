"""The chart's lifecycle hooks and uninstall against a real kube-apiserver.

- the opt-in post-delete prune Job: rendered as hooks, and its command run with exactly
  its hook ServiceAccount's RBAC removes what the real agent code published, nothing else;
- the ``helm test`` Pod: its command, as its ServiceAccount, checks the CRD, the operator
  rollout and /metrics;
- ``helm uninstall`` with InferenceThresholds present: none is left stuck (no finalizer).

There is no kubelet here (see test_helm_install.py): hook Jobs and Pods are not run by a
node, so their container args run as local processes with TokenRequest tokens of the
hooks' own ServiceAccounts, applied as Helm applies them before the hook runs. Here the
RBAC is exact and denials are checked; test_node_helm_hooks.py runs the same hooks for
real on a kubelet (`helm test`, `helm uninstall` with prune).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_support import (
    CHART,
    CLI,
    CRD_NAME,
    Helm,
    chart_operator,
    find,
    forbidden,
    install,
    kubectl,
    make_helm,
    token_kubeconfig,
)
from kubernetes import client
from operator_harness import Cluster, eventually

from inference_thresholds.api.node_contract import (
    LABEL_PREFIX,
    OWNED_LABELS_ANNOTATION,
    PROFILE_ANNOTATION,
)
from inference_thresholds.cli.main import build_parser
from inference_thresholds_agent.profile import detect_profile
from inference_thresholds_agent.publisher import KubernetesNodeApi, publish
from inference_thresholds_dev.cluster.access import ClusterAccess

pytestmark = pytest.mark.helm

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
HOOK = "helm.sh/hook"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


def _hooks(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if (o["metadata"].get("annotations") or {}).get(HOOK) == kind]


def _run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    full.update(env)
    return subprocess.run(argv, capture_output=True, text=True, env=full, timeout=120, check=False)


def test_hooks_and_new_values_render(helm: Helm) -> None:
    default = helm.objects(hooks=True)
    assert not _hooks(default, "post-delete"), "prune is opt-in"
    tests = _hooks(default, "test")
    assert {o["kind"] for o in tests} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Pod",
    }  # fmt: skip
    pod = find(tests, "Pod")
    assert pod["spec"]["containers"][0]["args"][:3] == ["operator", "check", "--crd"]
    # The Pod (its log is the result) stays until the next run; its grants go after it ran.
    policies = {o["kind"]: o["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
                for o in tests}  # fmt: skip
    assert policies.pop("Pod") == "before-hook-creation"
    assert set(policies.values()) == {"before-hook-creation,hook-succeeded"}
    (crd_rule,) = find(tests, "ClusterRole")["rules"]
    assert crd_rule["verbs"] == ["get"] and crd_rule["resourceNames"] == [CRD_NAME]
    assert not _hooks(helm.objects({"tests": {"enabled": False}}, hooks=True), "test")

    values = {
        "agent": {"prune": {"enabled": True}, "labels": {"include": "^cpu", "exclude": "isa"}},
        "operator": {"prometheus": {"url": "http://prometheus.monitoring.svc:9090"}},
    }
    objects = helm.objects(values, hooks=True)
    prune = _hooks(objects, "post-delete")
    assert len(prune) == 6
    for obj in prune:
        annotations = obj["metadata"]["annotations"]
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    job = find(prune, "Job")
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    daemonset = find(objects, "DaemonSet")
    pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
    selector = next(a for a in args if a.startswith("--wait-for-agents=")).split("=", 1)[1]
    assert all(pod_labels[k] == v for k, v in (p.split("=") for p in selector.split(",")))
    assert args[:3] == ["node-agent", "prune", "--all-nodes"]
    (rule,) = find(prune, "ClusterRole")["rules"]
    assert rule == {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]}
    agent_args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--labels-include=^cpu" in agent_args and "--labels-exclude=isa" in agent_args
    env = find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL",
            "value": "http://prometheus.monitoring.svc:9090"} in env  # fmt: skip
    bad = helm.run("template", "x", str(CHART), "--set", "operator.prometheus.url=prom:9090",
                   check=False)  # fmt: skip
    assert bad.returncode != 0 and "operator/prometheus/url" in bad.stderr


def _hook_pods(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        "prune": find(_hooks(objects, "post-delete"), "Job")["spec"]["template"]["spec"],
        "test": find(_hooks(objects, "test"), "Pod")["spec"],
    }


def test_hook_pods_get_the_main_pods_network_settings(helm: Helm) -> None:
    """Where pods reach the API server only from the host (apiServer, hostNetwork,
    bindAddress), the prune Job and the helm test Pod do too; the defaults stay as they were."""
    parser = build_parser()
    local = {
        "apiServer": {"host": "127.0.0.1", "port": 6443},
        "operator": {"hostNetwork": True, "bindAddress": "127.0.0.1",
                     "metrics": {"port": 18080}, "liveness": {"port": 18081}},
        "agent": {"hostNetwork": True, "bindAddress": "127.0.0.1", "metrics": {"port": 18082},
                  "prune": {"enabled": True}},
    }  # fmt: skip
    for name, pod in _hook_pods(helm.objects(local, hooks=True)).items():
        assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"
        assert pod["enableServiceLinks"] is False, name
        (container,) = pod["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1", name
        assert env["KUBERNETES_SERVICE_PORT"] == "6443", name
        assert parser.parse_args(container["args"]).func is not None, name
    test = _hook_pods(helm.objects(local, hooks=True))["test"]
    args = test["containers"][0]["args"]
    assert "--metrics-url=http://127.0.0.1:18080/metrics" in args
    (term,) = test["affinity"]["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selector["app.kubernetes.io/component"] == "operator"
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    for bind, host in (("0.0.0.0", "127.0.0.1"), ("::", "127.0.0.1"), ("::1", "[::1]")):
        local["operator"]["bindAddress"] = bind  # type: ignore[index]
        args = _hook_pods(helm.objects(local, hooks=True))["test"]["containers"][0]["args"]
        assert f"--metrics-url=http://{host}:18080/metrics" in args, bind

    # The defaults: the pod network and the kubernetes Service; no Service link variables.
    pods = _hook_pods(helm.objects({"agent": {"prune": {"enabled": True}}}, hooks=True))
    for name, pod in pods.items():
        assert "hostNetwork" not in pod and "affinity" not in pod, name
        assert pod["enableServiceLinks"] is False, name
        env = {e["name"] for e in pod["containers"][0].get("env") or []}
        assert "KUBERNETES_SERVICE_HOST" not in env, name
    assert any(a.startswith("--metrics-url=http://it-inference-thresholds-operator-metrics.")
               for a in pods["test"]["containers"][0]["args"])  # fmt: skip


def test_prune_hook_removes_what_the_agent_published_with_its_own_rbac(
    kube: ClusterAccess, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    objects = helm.objects({"agent": {"prune": {"enabled": True}}}, release="pr",
                           namespace=namespace, hooks=True)  # fmt: skip
    prune = _hooks(objects, "post-delete")
    rbac = [o for o in prune if o["kind"] != "Job"]
    kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    _admitted_as_restricted(kube, namespace, find(prune, "Job")["spec"]["template"])
    suffix = uuid.uuid4().hex[:6]
    names = [f"prune-a-{suffix}", f"prune-b-{suffix}"]
    cluster = Cluster(kube)
    try:
        admin = KubernetesNodeApi(cluster.api)
        profile = detect_profile(HOSTS / "dgx-a100-80gb")
        for name in names:  # what the real agent code publishes, plus others' keys
            cluster.create_node(name, {"team": "ml", LABEL_PREFIX + "user.pinned": "yes"})
            assert publish(admin, admin.get_node(name), profile).written
        before = cluster.core.read_node(names[0]).metadata
        owned = before.annotations[OWNED_LABELS_ANNOTATION].split(",")
        assert len(owned) > 10 and all(k in before.labels for k in owned)

        sa = find(prune, "ServiceAccount")["metadata"]["name"]
        token = kube.service_account_token(namespace, sa)
        config = token_kubeconfig(kube, token, tmp_path / "prune.kubeconfig")
        (container,) = find(prune, "Job")["spec"]["template"]["spec"]["containers"]

        def prune_run() -> subprocess.CompletedProcess[str]:
            return _run([CLI, *container["args"], f"--kubeconfig={config}"],
                        POD_NAMESPACE=namespace)  # fmt: skip

        result = eventually(
            lambda: r if (r := prune_run()).returncode == 0 else None,
            timeout=30, what="the hook's RBAC in effect",
        )  # fmt: skip
        assert "pruned" in result.stdout, result.stdout + result.stderr
        for name in names:
            meta = cluster.core.read_node(name).metadata
            assert not set(owned) & set(meta.labels), meta.labels
            assert (
                meta.labels["team"] == "ml" and meta.labels[LABEL_PREFIX + "user.pinned"] == "yes"
            )
            assert PROFILE_ANNOTATION not in (meta.annotations or {})
            assert OWNED_LABELS_ANNOTATION not in (meta.annotations or {})
        version = cluster.core.read_node(names[0]).metadata.resource_version
        again = prune_run()
        assert again.returncode == 0 and "pruned 0 key(s) from 0 node(s)" in again.stdout
        assert cluster.core.read_node(names[0]).metadata.resource_version == version

        with kube.api_client(token=token) as api:  # and nothing beyond what it needs
            core = client.CoreV1Api(api)
            forbidden(lambda: core.delete_node(names[0]))
            forbidden(lambda: core.list_namespaced_secret(namespace))
            forbidden(lambda: core.list_pod_for_all_namespaces())
    finally:
        for name in names:
            cluster.delete_node(name)
        kubectl(kube, "delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(rbac))
        cluster.close()


def _test_pod(kube: ClusterAccess, helm: Helm, release: str, namespace: str) -> dict[str, Any]:
    """The release's `helm test` hooks (from `helm get hooks`), RBAC applied as Helm would."""
    hooks = [d for d in yaml.safe_load_all(
        helm.run("get", "hooks", release, "--namespace", namespace,
                 kubeconfig=kube.kubeconfig).stdout) if d]  # fmt: skip
    tests = _hooks(hooks, "test")
    rbac = [o for o in tests if o["kind"] != "Pod"]
    kubectl(kube, "apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    pod = find(tests, "Pod")
    _admitted_as_restricted(kube, namespace, pod)
    return pod


def _admitted_as_restricted(kube: ClusterAccess, namespace: str, pod: dict[str, Any]) -> None:
    """A hook's Pod passes Pod Security "restricted" (server-side dry run, enforced)."""
    kubectl(kube, "label", "--overwrite", "namespace", namespace,
            "pod-security.kubernetes.io/enforce=restricted")  # fmt: skip
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hook-probe"},
            "spec": pod["spec"]}  # fmt: skip
    result = kubectl(kube, "apply", "-n", namespace, "--dry-run=server", "-f", "-",
                     input=yaml.safe_dump(body), check=False)  # fmt: skip
    assert result.returncode == 0 and "Warning" not in result.stderr, result.stderr


def test_helm_test_checks_the_crd_the_rollout_and_metrics(
    kube: ClusterAccess, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    release = install(kube, helm, "ht", namespace)
    try:
        pod = _test_pod(kube, helm, "ht", namespace)
        token = kube.service_account_token(namespace, pod["spec"]["serviceAccountName"])
        config = token_kubeconfig(kube, token, tmp_path / "test.kubeconfig")
        args = pod["spec"]["containers"][0]["args"]
        assert any(a.startswith("--metrics-url=http://ht-inference-thresholds-operator-metrics.")
                   for a in args)  # fmt: skip
        with chart_operator(kube, release, tmp_path, ("get", "nodes")) as operator:
            metrics = f"http://127.0.0.1:{operator.metrics_port}/metrics"
            local = [f"--metrics-url={metrics}" if a.startswith("--metrics-url=") else a
                     for a in args]  # fmt: skip

            def checked() -> subprocess.CompletedProcess[str] | None:
                r = _run([CLI, *local, f"--kubeconfig={config}"])
                return r if "ok: crd" in r.stdout else None

            result = eventually(checked, timeout=30, what="the test hook's RBAC in effect")
            # and the check refuses an endpoint that is not this operator's /metrics
            healthz = f"http://127.0.0.1:{operator.liveness_port}/healthz"
            wrong = _run([CLI, "operator", "check", "--metrics-url", healthz])
        assert "ok: crd" in result.stdout and "ok: metrics" in result.stdout, result.stdout
        # no kubelet here: the operator Deployment never becomes available, and says so
        assert "FAIL: deployment:" in result.stdout and "no available replica" in result.stdout
        assert result.returncode == 1
        assert wrong.returncode == 1 and "FAIL: metrics" in wrong.stdout, wrong.stdout
    finally:
        helm.run("uninstall", "ht", "--namespace", namespace, "--no-hooks",
                 kubeconfig=kube.kubeconfig, check=False)  # fmt: skip


def test_uninstall_with_resources_present_leaves_none_stuck(
    kube: ClusterAccess, helm: Helm, namespace: str, tmp_path: Path
) -> None:
    release = install(kube, helm, "un", namespace)
    cluster = Cluster(kube)
    node = f"un-{uuid.uuid4().hex[:6]}"
    try:
        cluster.create_node(node, {"uninstall-test": node})
        spec = {"nodeSelector": {"matchLabels": {"uninstall-test": node}},
                "model": {"preset": "llama-3.1-8b"}}  # fmt: skip
        with chart_operator(kube, release, tmp_path, ("watch", CRD_NAME, "--all-namespaces")):
            for name in ("kept-a", "kept-b"):
                cluster.create_cr(namespace, name, spec)
                cluster.await_condition(namespace, name, generation=1, timeout=60)
        # the operator is gone with the release; the resources stay (Helm keeps CRDs)
        helm.run("uninstall", "un", "--namespace", namespace, kubeconfig=kube.kubeconfig)
        for name in ("kept-a", "kept-b"):
            assert not cluster.cr(namespace, name)["metadata"].get("finalizers")
            cluster.delete_cr(namespace, name)
        for name in ("kept-a", "kept-b"):
            eventually(lambda name=name: cluster.get_cr(namespace, name) is None,  # type: ignore[misc]
                       timeout=10, what=f"{name} deleted with no operator")  # fmt: skip
            eventually(lambda name=name: cluster.configmap(namespace, f"{name}-thresholds") is None,  # type: ignore[misc]
                       timeout=60, what=f"{name}'s ConfigMap collected")  # fmt: skip
    finally:
        cluster.delete_node(node)
        cluster.close()
