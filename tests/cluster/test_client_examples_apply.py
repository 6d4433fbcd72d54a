"""The examples apply to a real kube-apiserver with the project's CRD installed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import install_crd

from inference_thresholds_dev.cluster.access import ClusterAccess

ROOT = Path(__file__).resolve().parents[2]


def _examples() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{file.name}:{doc['kind']}/{doc['metadata']['name']}", doc)
        for file in sorted((ROOT / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(file.read_text())
        if doc
    ]


EXAMPLES = _examples()
CRS = [(i, d) for i, d in EXAMPLES if d["kind"] == "InferenceThresholds"]
WORKLOADS = [(i, d) for i, d in EXAMPLES if d["kind"] != "InferenceThresholds"]


@pytest.fixture(scope="module")
def crd(kube: ClusterAccess) -> None:
    # Server-side, as the operator tests and Helm apply it: one field manager story.
    install_crd(kube)


def _in_namespace(doc: dict[str, Any], namespace: str) -> str:
    doc = copy.deepcopy(doc)
    doc["metadata"]["namespace"] = namespace
    return yaml.safe_dump(doc)


@pytest.mark.parametrize(("ident", "doc"), CRS, ids=[i for i, _ in CRS])
def test_example_cr_is_accepted_and_listed_as_ith(
    kube: ClusterAccess, crd: None, namespace: str, ident: str, doc: dict[str, Any]
) -> None:
    kube.kubectl("apply", "-f", "-", input=_in_namespace(doc, namespace))
    name = doc["metadata"]["name"]
    got = kube.kubectl("get", "ith", name, "-n", namespace, "-o", "yaml").stdout
    stored = yaml.safe_load(got)
    # Nothing the example sets was pruned by the structural schema.
    assert stored["spec"]["model"].items() >= doc["spec"]["model"].items()
    assert stored["spec"]["configMap"] == doc["spec"]["configMap"]


def test_cel_rejects_an_example_without_a_model_identity(
    kube: ClusterAccess, crd: None, namespace: str
) -> None:
    doc = copy.deepcopy(CRS[0][1])
    doc["spec"]["model"] = {"runtime": "bitnet.cpp"}
    result = kube.kubectl("apply", "-f", "-", input=_in_namespace(doc, namespace), check=False)
    assert result.returncode != 0
    assert "needs a preset" in result.stderr


@pytest.mark.parametrize(("ident", "doc"), WORKLOADS, ids=[i for i, _ in WORKLOADS])
def test_example_workloads_pass_server_validation(
    kube: ClusterAccess, namespace: str, ident: str, doc: dict[str, Any]
) -> None:
    result = kube.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=_in_namespace(doc, namespace)
    )
    assert "(server dry run)" in result.stdout
