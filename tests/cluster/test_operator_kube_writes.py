"""The operator's writes on the real apiserver ask for metadata-only answers: the
apiserver honours that for ConfigMaps and for our CRD's status subresource, and the
write helpers succeed with it (a malformed Accept is a 406, so every write would fail)."""

from __future__ import annotations

import json

from operator_harness import Cluster, unique

from inference_thresholds.api.crd import GROUP, PLURAL, VERSION
from inference_thresholds.controller.kube import METADATA_ANSWER, Kube, make_api_client
from inference_thresholds_dev.cluster.access import ClusterAccess

DOCUMENT = "x" * 50_000  # a generated ConfigMap's size


def test_writes_are_answered_with_metadata_only(
    kube: ClusterAccess, cluster: Cluster, namespace: str
) -> None:
    api = Kube(make_api_client(str(kube.kubeconfig)))
    name = unique("kw")
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    body = {"metadata": {"name": name}, "data": {"doc": DOCUMENT}}
    answer = json.loads(api.read("POST", path, body, accept=METADATA_ANSWER))
    assert answer["kind"] == "PartialObjectMetadata"
    assert "data" not in answer and answer["metadata"]["name"] == name
    assert len(json.dumps(answer)) < 2_000

    # The helpers the reconcile uses, with that answer: the writes land.
    version = answer["metadata"]["resourceVersion"]
    replaced = {"metadata": {"name": name, "resourceVersion": version}, "data": {"doc": "y"}}
    api.replace_configmap(namespace, name, replaced)
    assert cluster.cm(namespace, name)["data"] == {"doc": "y"}
    created = {"metadata": {"name": f"{name}-2"}, "data": {"doc": DOCUMENT}}
    api.create_configmap(namespace, created)
    assert cluster.cm(namespace, f"{name}-2")["data"]["doc"] == DOCUMENT

    cluster.create_cr(namespace, name, {"model": {"preset": "llama-3.1-8b"}})
    status_path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}/status"
    ops = [{"op": "add", "path": "/status", "value": {"observedGeneration": 1}}]
    answer = json.loads(
        api.read(
            "PATCH",
            status_path,
            ops,
            content_type="application/json-patch+json",
            accept=METADATA_ANSWER,
        )
    )
    assert answer["kind"] == "PartialObjectMetadata" and "status" not in answer
    api.patch_status(GROUP, VERSION, PLURAL, namespace, name, {"observedGeneration": 2})
    assert cluster.cr(namespace, name)["status"]["observedGeneration"] == 2
