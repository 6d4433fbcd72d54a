"""The operator against a real kube-apiserver: create, update, nodes, drift, GC, Events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from operator_harness import (
    A100_LABELS,
    Cluster,
    OperatorProcess,
    eventually,
    nodes,
    unique,
)

from inference_thresholds.api.thresholds_document import ThresholdsDocument
from inference_thresholds_dev.cluster.access import ClusterAccess

LLAMA = {"preset": "llama-3.1-8b"}
PROFILE = "hw.inference.dev/profile"


@pytest.fixture
def pool() -> str:
    """A label value unique to one test, so tests never select each other's nodes."""
    return unique("pool")


def _selector(pool: str) -> dict[str, object]:
    return {"matchLabels": {"test.inference.dev/pool": pool}}


def _labels(pool: str, **extra: str) -> dict[str, str]:
    return {"test.inference.dev/pool": pool, **extra}


def test_create_writes_configmap_status_and_events(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str, kube: ClusterAccess
) -> None:
    specs = [
        (f"{pool}-gpu", _labels(pool, **A100_LABELS), {"memory": "256Gi"}),
        (f"{pool}-cpu-a", _labels(pool), {}),
        (f"{pool}-cpu-b", _labels(pool), {}),
    ]
    with nodes(cluster, specs):
        cluster.create_cr(namespace, "demo", {"nodeSelector": _selector(pool), "model": LLAMA})
        cr = cluster.await_condition(namespace, "demo", generation=1)
        status = cr["status"]
        assert status["nodesMatched"] == 3
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "Ready": "True",
            "Feasible": "True",
            "NodesMatched": "True",
            "ConfigMapSynced": "True",
        }
        assert all(c["observedGeneration"] == 1 for c in status["conditions"])
        classes = {c["name"]: c for c in status["classes"]}
        assert sorted(c["nodeCount"] for c in classes.values()) == [1, 2]
        cpu_class = status["effectiveClass"]
        assert classes[cpu_class]["nodeCount"] == 2, "effective = the slowest class (CPU)"
        # The GPU node: GPUs from GFD labels, CPU and memory from its resources.
        assert {c["hardwareSource"] for c in classes.values()} == {"gfd+capacity", "capacity"}

        cm = cluster.configmap(namespace, "demo-thresholds")
        assert cm is not None
        meta = cm["metadata"]
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "inference-thresholds"
        assert meta["labels"]["thresholds.inference.dev/owner"] == "demo"
        owner = meta["ownerReferences"][0]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "InferenceThresholds",
            "demo",
            cr["metadata"]["uid"],
        )
        doc = json.loads(cm["data"]["thresholds.json"])
        assert doc["owner"] == "demo" and doc["generation"] == 1
        assert ThresholdsDocument.model_validate(doc).node_classes() == {
            f"{pool}-cpu-a": cpu_class,
            f"{pool}-cpu-b": cpu_class,
            f"{pool}-gpu": next(n for n in classes if n != cpu_class),
        }
        assert doc["contentHash"] == status["configMapRef"]["contentHash"]
        eff = status["effective"]
        assert float(cm["data"]["BITNET_MIN_TOKENS_PER_SECOND"]) == pytest.approx(
            eff["minTokensPerSecond"], rel=1e-3
        )
        assert "BITNET_MAX_LATENCY_MS" in cm["data"] and "BITNET_MAX_MEMORY_MB" in cm["data"]

        # The first pass's decisions in one Event: thresholds, the write, the classes.
        event = cluster.await_event(namespace, "demo", "ThresholdsComputed")
        parts = event["message"].split(" | ")
        assert parts[0].startswith("effective (class ") and "minTokensPerSecond=" in parts[0]
        assert parts[1].startswith("created ConfigMap demo-thresholds (content ")
        assert parts[2].startswith("3 node(s) in 2 hardware class(es): ")

        described = kube.kubectl("describe", "ith", "demo", "-n", namespace).stdout
        assert "ThresholdsComputed" in described and "hardware class(es)" in described
        table = kube.kubectl("get", "ith", "-n", namespace).stdout
        header = table.splitlines()[0].split()
        assert header[:4] == ["NAME", "MIN", "TOK/S", "MAX"] and "READY" in header
        assert "True" in table.splitlines()[1]
        # kubectl explain helps: descriptions made it into the served schema.
        explained = kube.kubectl("explain", "ith.spec.configMap.envPrefix").stdout
        assert "BITNET_" in explained


def test_spec_update_rewrites_configmap_with_an_event(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        cluster.create_cr(namespace, "upd", {"nodeSelector": _selector(pool), "model": LLAMA})
        first = cluster.await_condition(namespace, "upd", generation=1)["status"]
        cluster.patch_spec(namespace, "upd", {"context": {"environment": "development"}})
        second = cluster.await_condition(namespace, "upd", generation=2)["status"]
        assert second["configMapRef"]["contentHash"] != first["configMapRef"]["contentHash"]
        doc = cluster.document(namespace, "upd-thresholds")
        assert (
            doc["generation"] == 2 and doc["contentHash"] == second["configMapRef"]["contentHash"]
        )
        changed = cluster.await_event(namespace, "upd", "ThresholdsChanged")
        assert "→" in changed["message"]

        # An explicit override wins and is reported.
        cluster.patch_spec(namespace, "upd", {"overrides": {"minTokensPerSecond": 0.25}})
        third = cluster.await_condition(namespace, "upd", generation=3)["status"]
        assert third["effective"]["minTokensPerSecond"] == 0.25
        assert (
            cluster.cm(namespace, "upd-thresholds")["data"]["BITNET_MIN_TOKENS_PER_SECOND"]
            == "0.25"
        )
        # Part of the pass's one Event, which is named for the thresholds' move.
        cluster.await_event(
            namespace,
            "upd",
            "ThresholdsChanged",
            containing="explicit thresholds: minTokensPerSecond=0.25 (spec.overrides)",
        )


def test_node_relabel_changes_only_the_selecting_cr(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    a, b = unique("pa"), unique("pb")
    specs: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (f"{a}-1", _labels(a), {}),
        (f"{b}-1", _labels(b), {}),
        (f"{a}-mover", _labels(a), {"cpu": "64", "memory": "512Gi"}),
    ]
    with nodes(cluster, specs):
        cluster.create_cr(namespace, "sel-a", {"nodeSelector": _selector(a), "model": LLAMA})
        cluster.create_cr(namespace, "sel-b", {"nodeSelector": _selector(b), "model": LLAMA})
        cluster.await_condition(namespace, "sel-a")
        cluster.await_condition(namespace, "sel-b")
        eventually(
            lambda: (
                (cluster.get_cr(namespace, "sel-a") or {}).get("status", {}).get("nodesMatched")
                == 2
            ),
            what="sel-a sees 2 nodes",
        )
        untouched_cr = cluster.cr(namespace, "sel-b")["metadata"]["resourceVersion"]
        untouched_cm = cluster.cm(namespace, "sel-b-thresholds")["metadata"]["resourceVersion"]

        # A node unrelated to both CRs changes: neither is rewritten.
        cluster.label_node(f"{a}-mover", {"unrelated": "yes"})
        # The mover leaves pool a for a third pool: sel-a shrinks, sel-b stays.
        cluster.label_node(f"{a}-mover", {"test.inference.dev/pool": unique("pc")})

        def shrunk() -> bool:
            st = (cluster.get_cr(namespace, "sel-a") or {}).get("status", {})
            return bool(st.get("nodesMatched") == 1)

        eventually(shrunk, what="sel-a drops the relabelled node")
        doc = cluster.document(namespace, "sel-a-thresholds")
        assert list(ThresholdsDocument.model_validate(doc).node_classes()) == [f"{a}-1"]
        assert cluster.cr(namespace, "sel-b")["metadata"]["resourceVersion"] == untouched_cr
        assert (
            cluster.cm(namespace, "sel-b-thresholds")["metadata"]["resourceVersion"] == untouched_cm
        )

        # Moving it into pool b changes sel-b.
        cluster.label_node(f"{a}-mover", {"test.inference.dev/pool": b})
        eventually(
            lambda: (
                (cluster.get_cr(namespace, "sel-b") or {}).get("status", {}).get("nodesMatched")
                == 2
            ),
            what="sel-b gains the node",
        )
        assert len(cluster.cr(namespace, "sel-b")["status"]["classes"]) == 2
        cluster.await_event(namespace, "sel-b", None, containing="2 node(s) in 2 hardware class")


def test_node_deleted_while_selected(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    specs: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (f"{pool}-keep", _labels(pool), {}),
        (f"{pool}-gone", _labels(pool, **A100_LABELS), {}),
    ]
    with nodes(cluster, specs):
        cluster.create_cr(namespace, "del", {"nodeSelector": _selector(pool), "model": LLAMA})
        cluster.await_condition(namespace, "del")
        eventually(
            lambda: cluster.cr(namespace, "del")["status"].get("nodesMatched") == 2,
            what="both nodes selected",
        )
        cluster.delete_node(f"{pool}-gone")
        eventually(
            lambda: cluster.cr(namespace, "del")["status"].get("nodesMatched") == 1,
            what="deleted node dropped",
        )
        doc = ThresholdsDocument.model_validate(cluster.document(namespace, "del-thresholds"))
        assert list(doc.node_classes()) == [f"{pool}-keep"]
        # The last one goes too: no matching nodes, said plainly.
        cluster.delete_node(f"{pool}-keep")
        cluster.await_condition(namespace, "del", "Ready", "False", reason="NoMatchingNodes")
        cluster.await_event(namespace, "del", "NoMatchingNodes")


def test_infeasible_model(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    with nodes(cluster, [(f"{pool}-small", _labels(pool), {"cpu": "4", "memory": "8Gi"})]):
        spec = {"nodeSelector": _selector(pool), "model": {"preset": "llama-3.1-405b"}}
        cluster.create_cr(namespace, "huge", spec)
        cr = cluster.await_condition(namespace, "huge", "Ready", "False", reason="ModelDoesNotFit")
        feasible = next(c for c in cr["status"]["conditions"] if c["type"] == "Feasible")
        assert feasible["status"] == "False" and "cannot serve the model" in feasible["message"]
        assert cr["status"]["classes"][0]["feasible"] is False
        assert not cr["status"].get("effective")
        cluster.await_event(namespace, "huge", "ModelDoesNotFit")
        data = cluster.cm(namespace, "huge-thresholds")["data"]
        assert "BITNET_MIN_TOKENS_PER_SECOND" not in data, "no threshold for a model that won't fit"


def test_configmap_drift_is_repaired(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        cluster.create_cr(namespace, "drift", {"nodeSelector": _selector(pool), "model": LLAMA})
        cluster.await_condition(namespace, "drift")
        good = cluster.configmap(namespace, "drift-thresholds")
        assert good is not None
        cluster.core.patch_namespaced_config_map(
            "drift-thresholds", namespace, {"data": {"BITNET_MIN_TOKENS_PER_SECOND": "0"}}
        )
        eventually(
            lambda: cluster.cm(namespace, "drift-thresholds")["data"] == good["data"],
            what="edited ConfigMap restored",
        )
        repaired = cluster.await_event(namespace, "drift", "ConfigMapRepaired")
        assert "edited by hand" in repaired["message"]

        cluster.core.delete_namespaced_config_map("drift-thresholds", namespace)
        eventually(
            lambda: (
                (cluster.configmap(namespace, "drift-thresholds") or {}).get("data") == good["data"]
            ),
            what="deleted ConfigMap recreated",
        )


def test_existing_foreign_configmap_is_a_conflict_not_overwritten(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    foreign = {"metadata": {"name": "mine"}, "data": {"keep": "me"}}
    cluster.core.create_namespaced_config_map(namespace, foreign)
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        spec = {"nodeSelector": _selector(pool), "model": LLAMA, "configMap": {"name": "mine"}}
        cluster.create_cr(namespace, "clash", spec)
        cr = cluster.await_condition(
            namespace, "clash", "Ready", "False", reason="ConfigMapConflict"
        )
        message = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")["message"]
        assert "spec.configMap.name" in message
        assert cluster.cm(namespace, "mine")["data"] == {"keep": "me"}
        cluster.await_event(namespace, "clash", "ConfigMapConflict")
        # Pointing it elsewhere resolves it.
        cluster.patch_spec(namespace, "clash", {"configMap": {"name": "clash-own"}})
        cluster.await_condition(namespace, "clash", generation=2)
        assert cluster.configmap(namespace, "clash-own") is not None


def test_custom_env_prefix(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        spec = {"nodeSelector": _selector(pool), "model": LLAMA, "configMap": {"envPrefix": "APP_"}}
        cluster.create_cr(namespace, "prefixed", spec)
        cluster.await_condition(namespace, "prefixed")
        data = cluster.cm(namespace, "prefixed-thresholds")["data"]
        assert "APP_MIN_TOKENS_PER_SECOND" in data
        assert not any(k.startswith("BITNET_") for k in data)


def test_delete_cr_garbage_collects_configmap(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        cluster.create_cr(namespace, "gc", {"nodeSelector": _selector(pool), "model": LLAMA})
        cluster.await_condition(namespace, "gc")
        assert cluster.configmap(namespace, "gc-thresholds") is not None
        cluster.delete_cr(namespace, "gc")
        eventually(lambda: cluster.get_cr(namespace, "gc") is None, what="CR gone")
        eventually(
            lambda: cluster.configmap(namespace, "gc-thresholds") is None,
            timeout=60,
            what="ConfigMap garbage-collected",
        )
        # Its metrics series vanish too.
        eventually(
            lambda: (
                f'namespace="{namespace}",' not in operator.metrics()
                or 'name="gc"' not in operator.metrics()
            ),
            what="gc's series gone",
        )


def test_metrics_expose_thresholds(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str, tmp_path: Path
) -> None:
    with nodes(cluster, [(f"{pool}-n", _labels(pool), {})]):
        cluster.create_cr(namespace, "met", {"nodeSelector": _selector(pool), "model": LLAMA})
        cr = cluster.await_condition(namespace, "met")
        value = eventually(
            lambda: operator.metric(
                "inference_thresholds_effective_min_tokens_per_second",
                namespace=namespace,
                name="met",
            ),
            what="effective threshold gauge",
        )
        assert value == pytest.approx(cr["status"]["effective"]["minTokensPerSecond"])
        text = operator.metrics()
        assert "inference_thresholds_reconciles_total" in text
        assert "inference_thresholds_reconcile_duration_seconds_bucket" in text
        assert 'inference_thresholds_resources{condition="Ready",status="True"}' in text


def test_agent_profile_annotation_is_preferred_and_bad_one_falls_back(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    profile = {
        "cpu": {"vendor": "amd", "model": "AMD EPYC 9654", "physicalCores": 96, "usableCores": 96},
        "memory": {"totalMiB": 786432, "bandwidthGBps": 460.8, "bandwidthSource": "spec"},
        "gpus": [{"vendor": "nvidia", "product": "NVIDIA H100 80GB HBM3", "count": 8,
                  "memoryMiB": 81559, "computeCapability": "9.0"}],
    }  # fmt: skip
    specs: list[tuple[str, dict[str, str], dict[str, Any]]] = [
        (f"{pool}-agent", _labels(pool), {"annotations": {PROFILE: json.dumps(profile)}}),
        (f"{pool}-broken", _labels(pool, **A100_LABELS), {"annotations": {PROFILE: "{not json"}}),
    ]
    with nodes(cluster, specs):
        cluster.create_cr(namespace, "agent", {"nodeSelector": _selector(pool), "model": LLAMA})
        status = cluster.await_condition(namespace, "agent")["status"]
        sources = {c["hardwareSource"]: c for c in status["classes"]}
        # The agent's profile lacks the architecture: nodeInfo fills that one field.
        assert set(sources) == {"agent+capacity", "gfd+capacity"}
        assert "8x NVIDIA H100 80GB HBM3" in sources["agent+capacity"]["hardwareSummary"]
        doc = cluster.document(namespace, "agent-thresholds")
        broken = doc["classes"][sources["gfd+capacity"]["name"]]["decisions"]
        assert any(PROFILE in line and "fell back" in line for line in broken)
