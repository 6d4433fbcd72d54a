"""node-agent/deploy/admission-policy.yaml on a real apiserver, with a pod-bound token.

The agent's service account has RBAC to patch every Node (RBAC cannot say "its own
node" nor "only these labels"); the ValidatingAdmissionPolicy narrows that to the Node
named in the token's authentication.kubernetes.io/node-name claim and to hw.inference.dev/
keys.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException

from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_agent.admission import load_policy
from inference_thresholds_agent.kube_rest import NodeApiError, RestNodeApi, from_kubeconfig
from inference_thresholds_agent.profile import detect_profile
from inference_thresholds_agent.publisher import KubernetesNodeApi, publish
from inference_thresholds_dev.cluster.access import ClusterAccess

SERVICE_ACCOUNT = "node-agent"


@dataclass
class Setup:
    namespace: str
    node_a: str
    node_b: str
    agent: Any  # ApiClient authenticated with the token bound to a pod on node A
    admin: Any
    token: str


def _apply(kube: ClusterAccess, documents: list[dict[str, Any]]) -> None:
    kube.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(documents))


def _delete(kube: ClusterAccess, documents: list[dict[str, Any]]) -> None:
    kube.kubectl("delete", "--ignore-not-found", "-f", "-", input=yaml.safe_dump_all(documents))


def _patch(api: Any, node: str, patch: dict[str, Any], *, dry_run: bool = False) -> None:
    client.CoreV1Api(api).patch_node(
        node,
        patch,
        _content_type="application/merge-patch+json",
        dry_run="All" if dry_run else None,
    )


def _denied(api: Any, node: str, patch: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as raised:
        _patch(api, node, patch)
    assert raised.value.status in (403, 422), raised.value.body
    message = str(json.loads(raised.value.body or "{}").get("message", ""))
    assert "ValidatingAdmissionPolicy" in message, message
    return message


@pytest.fixture
def setup(kube: ClusterAccess, namespace: str) -> Iterator[Setup]:
    suffix = uuid.uuid4().hex[:6]
    name = f"it-node-agent-{suffix}"
    node_a, node_b = f"node-a-{suffix}", f"node-b-{suffix}"
    rbac: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": name},
         "rules": [{"apiGroups": [""], "resources": ["nodes"],
                    "verbs": ["get", "list", "watch", "patch", "update"]},
                   {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": name},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT,
                       "namespace": namespace}]},
    ]  # fmt: skip
    policy = load_policy(namespace, SERVICE_ACCOUNT, name=name)
    nodes = [
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node, "team": "ml"}}}
        for node in (node_a, node_b)
    ]  # fmt: skip
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "agent", "namespace": namespace},
        "spec": {
            "nodeName": node_a,
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": False,
            "containers": [{"name": "agent", "image": "registry.k8s.io/pause:3.10"}],
        },
    }
    _apply(kube, rbac + policy + nodes)
    _apply(kube, [pod])
    token = kube.service_account_token(namespace, SERVICE_ACCOUNT, pod="agent")
    with kube.api_client() as admin, kube.api_client(token=token) as agent:
        # RBAC and the policy reach the apiserver's caches asynchronously: wait until an
        # allowed dry-run passes and a forbidden one is refused by the policy.
        last: list[str] = []

        def enforced() -> bool:
            try:
                _patch(agent, node_a, {"metadata": {"labels": {LABEL_PREFIX + "probe": "x"}}},
                       dry_run=True)  # fmt: skip
            except ApiException as exc:
                last[:] = [f"allowed patch refused: {exc.status} {exc.body}"]
                return False
            try:
                _patch(agent, node_a, {"metadata": {"labels": {"probe": "x"}}}, dry_run=True)
            except ApiException as exc:
                last[:] = [f"forbidden patch refused: {exc.status} {exc.body}"]
                return "ValidatingAdmissionPolicy" in (exc.body or "")
            last[:] = ["forbidden patch allowed"]
            return False

        try:
            kube.eventually(enforced, timeout=60, what="RBAC and admission policy in effect")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {last}") from None
        yield Setup(namespace, node_a, node_b, agent, admin, token)
    _delete(kube, policy + rbac[1:])
    core = client.CoreV1Api
    with kube.api_client() as admin:
        for node in (node_a, node_b):
            with contextlib.suppress(ApiException):
                core(admin).delete_node(node)


def _labels(api: Any, node: str) -> dict[str, str]:
    labels: dict[str, str] = client.CoreV1Api(api).read_node(node).metadata.labels or {}
    return labels


def test_agent_labels_its_own_node(setup: Setup) -> None:
    profile = detect_profile()
    api = KubernetesNodeApi(setup.agent)
    result = publish(api, api.get_node(setup.node_a), profile)
    assert result.written
    labels = _labels(setup.admin, setup.node_a)
    assert labels[LABEL_PREFIX + "cpu.logical-cores"] == str(profile.cpu.logical_cores)
    assert labels["team"] == "ml"
    # and removes its own stale keys again
    _patch(setup.agent, setup.node_a, {"metadata": {"labels": {LABEL_PREFIX + "cpu.arch": None}}})
    assert LABEL_PREFIX + "cpu.arch" not in _labels(setup.admin, setup.node_a)


def test_agent_cannot_label_another_node(setup: Setup) -> None:
    message = _denied(
        setup.agent, setup.node_b, {"metadata": {"labels": {LABEL_PREFIX + "gpu.count": "8"}}}
    )
    assert "only the Node its pod runs on" in message
    assert LABEL_PREFIX + "gpu.count" not in _labels(setup.admin, setup.node_b)


def test_agent_cannot_set_change_or_remove_foreign_labels(setup: Setup) -> None:
    for labels in ({"node-role.kubernetes.io/control-plane": ""}, {"team": "other"},
                   {"team": None}):  # fmt: skip
        message = _denied(setup.agent, setup.node_a, {"metadata": {"labels": labels}})
        assert "only hw.inference.dev/ labels" in message
    assert _labels(setup.admin, setup.node_a)["team"] == "ml"


def test_agent_cannot_set_foreign_annotations_or_taints(setup: Setup) -> None:
    message = _denied(
        setup.agent, setup.node_a, {"metadata": {"annotations": {"example.com/x": "y"}}}
    )
    assert "only hw.inference.dev/ annotations" in message
    taint = {"key": "evil", "value": "x", "effect": "NoSchedule"}
    message = _denied(setup.agent, setup.node_a, {"spec": {"taints": [taint]}})
    assert "spec, taints" in message
    message = _denied(setup.agent, setup.node_a, {"spec": {"unschedulable": True}})
    assert "spec, taints" in message


def test_agent_cannot_write_node_status(setup: Setup) -> None:
    with pytest.raises(ApiException) as raised:
        client.CoreV1Api(setup.agent).patch_node_status(
            setup.node_a, {"status": {"capacity": {"example.com/gpu": "8"}}}
        )
    assert raised.value.status in (403, 422)
    assert "Node status" in (raised.value.body or "")


def test_policy_does_not_apply_to_other_users(setup: Setup) -> None:
    _patch(setup.admin, setup.node_b, {"metadata": {"labels": {"team": "infra"}}})
    assert _labels(setup.admin, setup.node_b)["team"] == "infra"


def test_token_without_node_claim_is_denied(kube: ClusterAccess, setup: Setup) -> None:
    # The same service account, but a token not bound to a pod: no node claim at all.
    token = kube.service_account_token(setup.namespace, SERVICE_ACCOUNT)
    with kube.api_client(token=token) as unbound:
        message = _denied(
            unbound, setup.node_a, {"metadata": {"labels": {LABEL_PREFIX + "gpu.count": "1"}}}
        )
    assert "only the Node its pod runs on" in message


def test_the_agents_own_http_client_with_the_bound_token(kube: ClusterAccess, setup: Setup) -> None:
    """What the DaemonSet runs: kube_rest.RestNodeApi with the pod's projected token."""
    api = RestNodeApi(from_kubeconfig(kube.kubeconfig, token=setup.token))
    profile = detect_profile()
    assert publish(api, api.get_node(setup.node_a), profile).written
    assert not publish(api, api.get_node(setup.node_a), profile).written
    with pytest.raises(NodeApiError) as raised:
        publish(api, api.get_node(setup.node_b), profile)
    assert raised.value.status == 422
    assert "only the Node its pod runs on" in str(raised.value)
