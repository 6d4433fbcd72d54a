"""The cluster under test is a real one: schema/CEL validation, RBAC, garbage collection,
bound service-account tokens, kubectl and the version it reports."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import ApiException

from inference_thresholds_dev.cluster.access import ClusterAccess

GROUP = "controlplane.test.inference.dev"
PLURAL = "widgets"
NODE_NAME_EXTRA = "authentication.kubernetes.io/node-name"
KUBE_GO_MOD = Path(__file__).parents[2] / "hack" / "controlplane" / "kube" / "go.mod"


def _status(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body or "{}")
    return body


def _widget_crd() -> dict[str, Any]:
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer"},
            "note": {"type": "string", "maxLength": 20},
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.minReplicas <= self.maxReplicas",
                "message": "minReplicas must not exceed maxReplicas",
                "fieldPath": ".maxReplicas",
            }
        ],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {"plural": PLURAL, "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": spec_schema},
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture
def widget_crd(kube: ClusterAccess) -> Iterator[None]:
    name = f"{PLURAL}.{GROUP}"
    with kube.api_client() as api:
        ext: Any = client.ApiextensionsV1Api(api)  # CRD bodies are plain dicts here

        def delete() -> None:
            try:
                ext.delete_custom_resource_definition(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise

        def gone() -> bool:
            try:
                ext.read_custom_resource_definition(name)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        delete()  # a leftover from an interrupted run against an existing cluster
        kube.eventually(gone, what="old CRD deleted")
        ext.create_custom_resource_definition(_widget_crd())

        def established() -> bool:
            conditions = ext.read_custom_resource_definition(name).status.conditions or []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        kube.eventually(established, what="CRD Established")
        yield
        delete()


def test_version_is_the_built_one(kube: ClusterAccess) -> None:
    if not kube.local:
        pytest.skip("the version is only known for the project's own control plane")
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", KUBE_GO_MOD.read_text(), re.M)
    assert match, f"no k8s.io/kubernetes requirement in {KUBE_GO_MOD}"
    with kube.api_client() as api:
        info = client.VersionApi(api).get_code()
    assert info.git_version == match.group(1)
    assert (info.major, info.minor) == ("1", match.group(1).split(".")[1])


@pytest.mark.usefixtures("widget_crd")
def test_crd_schema_and_cel_rule_are_enforced(kube: ClusterAccess, namespace: str) -> None:
    def widget(name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "metadata": {"name": name},
            "spec": spec,
        }

    with kube.api_client() as api:
        objects: Any = client.CustomObjectsApi(api)

        def create(body: dict[str, Any]) -> dict[str, Any]:
            created: dict[str, Any] = objects.create_namespaced_custom_object(
                GROUP, "v1", namespace, PLURAL, body
            )
            return created

        with pytest.raises(ApiException) as cel:
            create(widget("inverted", minReplicas=5, maxReplicas=2))
        assert cel.value.status == 422
        causes = _status(cel.value)["details"]["causes"]
        assert [c["field"] for c in causes] == ["spec.maxReplicas"]
        assert "minReplicas must not exceed maxReplicas" in causes[0]["message"]

        with pytest.raises(ApiException) as schema:
            create(widget("negative", minReplicas=-1, maxReplicas=2))
        assert schema.value.status == 422
        assert "spec.minReplicas" in [
            c["field"] for c in _status(schema.value)["details"]["causes"]
        ]

        create(widget("good", minReplicas=1, maxReplicas=3, note="ok", unknownField="pruned"))
        stored = objects.get_namespaced_custom_object(GROUP, "v1", namespace, PLURAL, "good")
        # The structural schema prunes unknown fields; everything else round-trips.
        assert stored["spec"] == {"minReplicas": 1, "maxReplicas": 3, "note": "ok"}


def test_service_account_is_denied_until_bound(kube: ClusterAccess, namespace: str) -> None:
    with kube.api_client() as admin:
        core = client.CoreV1Api(admin)
        rbac = client.RbacAuthorizationV1Api(admin)
        core.create_namespaced_service_account(
            namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
        )
        token = kube.service_account_token(namespace, "reader")

        with kube.api_client(token=token) as as_reader:
            reader = client.CoreV1Api(as_reader)
            with pytest.raises(ApiException) as denied:
                reader.list_namespaced_config_map(namespace)
            assert denied.value.status == 403

            rbac.create_namespaced_role(
                namespace,
                client.V1Role(
                    metadata=client.V1ObjectMeta(name="configmap-reader"),
                    rules=[
                        client.V1PolicyRule(
                            api_groups=[""], resources=["configmaps"], verbs=["get", "list"]
                        )
                    ],
                ),
            )
            rbac.create_namespaced_role_binding(
                namespace,
                client.V1RoleBinding(
                    metadata=client.V1ObjectMeta(name="reader"),
                    role_ref=client.V1RoleRef(
                        api_group="rbac.authorization.k8s.io", kind="Role", name="configmap-reader"
                    ),
                    subjects=[
                        client.RbacV1Subject(
                            kind="ServiceAccount", name="reader", namespace=namespace
                        )
                    ],
                ),
            )

            def allowed() -> bool:
                try:
                    reader.list_namespaced_config_map(namespace)
                except ApiException as exc:
                    if exc.status == 403:
                        return False  # the authorizer's cache has not seen the binding yet
                    raise
                return True

            kube.eventually(allowed, what="RoleBinding in effect")
            # The grant is exactly the Role's: other resources stay forbidden.
            with pytest.raises(ApiException) as still_denied:
                reader.list_namespaced_secret(namespace)
            assert still_denied.value.status == 403


def test_owned_configmap_is_garbage_collected(kube: ClusterAccess, namespace: str) -> None:
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        owner: Any = core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
        )
        reference = client.V1OwnerReference(
            api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
        )
        core.create_namespaced_config_map(
            namespace,
            client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="owned", owner_references=[reference]),
                data={"k": "v"},
            ),
        )
        core.create_namespaced_config_map(
            namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="unowned"))
        )
        core.delete_namespaced_config_map("owner", namespace)

        def owned_gone() -> bool:
            try:
                core.read_namespaced_config_map("owned", namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return True
                raise
            return False

        kube.eventually(owned_gone, timeout=60, what="owned ConfigMap garbage-collected")
        unowned: Any = core.read_namespaced_config_map("unowned", namespace)
        assert unowned.metadata.name == "unowned"


def test_pod_bound_token_carries_node_name(kube: ClusterAccess, namespace: str) -> None:
    node_name = f"it-node-{uuid.uuid4().hex[:8]}"
    with kube.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=node_name)))
        try:
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="agent"))
            )
            core.create_namespaced_pod(
                namespace,
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name="agent"),
                    spec=client.V1PodSpec(
                        node_name=node_name,  # no scheduler here: bind it directly
                        service_account_name="agent",
                        containers=[
                            client.V1Container(name="agent", image="example.invalid/agent:0")
                        ],
                    ),
                ),
            )
            token = kube.service_account_token(namespace, "agent", pod="agent")
            review = client.AuthenticationV1Api(api).create_token_review(
                client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))
            )
        finally:
            core.delete_node(node_name)
    result: Any = review.status
    assert result.authenticated, result.error
    assert result.user.username == f"system:serviceaccount:{namespace}:agent"
    extra = result.user.extra
    assert extra[NODE_NAME_EXTRA] == [node_name]
    assert extra["authentication.kubernetes.io/pod-name"] == ["agent"]


def test_kubectl_works_with_the_kubeconfig(kube: ClusterAccess, namespace: str) -> None:
    manifest = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "via-kubectl", "namespace": namespace},
            "data": {"answer": "42"},
        }
    )
    kube.kubectl("apply", "-f", "-", input=manifest)
    got = kube.kubectl(
        "get", "configmap", "via-kubectl", "-n", namespace, "-o", "jsonpath={.data.answer}"
    )
    assert got.stdout == "42"
    assert (
        kube.kubectl("auth", "can-i", "create", "configmaps", "-n", namespace).stdout.strip()
        == "yes"
    )
    assert kube.kubectl("get", "--raw", "/readyz").stdout.strip() == "ok"
    missing = kube.kubectl("get", "configmap", "absent", "-n", namespace, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
