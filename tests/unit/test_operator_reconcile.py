"""Planning, status and decision Events with the real engine, and the ConfigMap data."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from inference_thresholds import engine
from inference_thresholds.api.crd import InferenceThresholdsStatus
from inference_thresholds.api.thresholds_document import (
    CONTENT_HASH_KEY,
    PUBLISHED_ENV_KEY,
    ThresholdsDocument,
    env_value,
    parse_published_env,
)
from inference_thresholds.controller.configmap import (
    Owner,
    SyncOutcome,
    desired_configmap,
    owner_label_value,
    render_data,
)
from inference_thresholds.controller.decision_events import decision_events, merged
from inference_thresholds.controller.events import EVENT_MESSAGE_LIMIT, DecisionEvent
from inference_thresholds.controller.metrics import OperatorMetrics, serve_metrics
from inference_thresholds.controller.node_index import NodeRecord, node_record
from inference_thresholds.controller.plan import Plan, document_hash, make_plan
from inference_thresholds.controller.status import new_status

T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"
A100 = {
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.memory": "81920",
}


def _nodes(*specs: tuple[str, dict[str, str], str]) -> dict[str, NodeRecord]:
    out = {}
    for name, labels, memory in specs:
        body = {
            "metadata": {"name": name, "labels": labels},
            "status": {"capacity": {"cpu": "16", "memory": memory}},
        }
        out[name] = node_record(body)
    return out


NODES = _nodes(
    ("gpu-1", {"pool": "gpu", **A100}, "256Gi"),
    ("cpu-1", {"pool": "cpu"}, "64Gi"),
    ("cpu-2", {"pool": "cpu"}, "64Gi"),
    ("tiny", {"pool": "tiny"}, "2Gi"),
)


def _plan(spec: dict[str, Any], generation: int = 1, nodes: Any = None) -> Plan:
    return make_plan(
        name="demo",
        namespace="ns",
        generation=generation,
        raw_spec=spec,
        nodes=NODES if nodes is None else nodes,
        compute=engine.compute,
        resolve=engine.resolve_model,
    )


OK = SyncOutcome("created", "created ConfigMap demo-thresholds")
LLAMA = {"model": {"preset": "llama-3.1-8b"}}


def _cond(status: InferenceThresholdsStatus, type_: str) -> tuple[str, str]:
    c = status.condition(type_)
    assert c is not None
    return c.status.value, c.reason


def test_effective_thresholds_are_the_slowest_class() -> None:
    plan = _plan({**LLAMA, "nodeSelector": {"matchExpressions": [
        {"key": "pool", "operator": "In", "values": ["gpu", "cpu"]}]}})  # fmt: skip
    assert plan.invalid is None and plan.nodes_matched == 3
    assert len(plan.classes) == 2
    cpu = next(c for c in plan.classes if c.name.startswith("cpu-"))
    gpu = next(c for c in plan.classes if c.name.startswith("gpu-"))
    assert plan.effective_class == cpu.name and cpu.nodes == ["cpu-1", "cpu-2"]
    assert cpu.result and gpu.result
    assert plan.effective == cpu.result.thresholds
    assert gpu.result.thresholds.min_tokens_per_second > cpu.result.thresholds.min_tokens_per_second  # type: ignore[operator]
    doc = plan.document
    assert doc is not None
    assert doc.node_classes() == {"cpu-1": cpu.name, "cpu-2": cpu.name, "gpu-1": gpu.name}
    assert doc.classes[cpu.name].nodes == ["cpu-1", "cpu-2"] and doc.nodes is None
    assert doc.content_hash == document_hash(doc)


def test_status_conditions_and_events_then_idempotent() -> None:
    plan = _plan(LLAMA)
    first = new_status(plan, InferenceThresholdsStatus(), OK, T0)
    assert first.observed_generation == 1
    assert _cond(first, "Ready") == ("True", "Reconciled")
    assert _cond(first, "NodesMatched") == ("True", "NodesSelected")
    # 'tiny' (2 GiB) cannot hold an 8B model: feasible elsewhere, so Ready but not Feasible.
    assert _cond(first, "Feasible") == ("False", "ModelDoesNotFit")
    events = decision_events(plan, InferenceThresholdsStatus(), OK)
    # One Normal Event for what the pass decided, one Warning per problem.
    assert [(e.type, e.reason) for e in events] == [
        ("Normal", "ThresholdsComputed"),
        ("Warning", "ModelDoesNotFit"),
    ]
    thresholds, written, classes = events[0].message.split(" | ")
    assert thresholds.startswith(f"effective (class {plan.effective_class}): minTokensPerSecond=")
    assert written == OK.message
    assert classes.startswith(
        f"{plan.nodes_matched} node(s) in {len(plan.classes)} hardware class(es): "
    )
    # Same inputs an hour later (e.g. operator restart): identical status, no Events.
    again = _plan(LLAMA)
    unchanged = SyncOutcome("unchanged")
    second = new_status(again, first, unchanged, T1)
    assert second == first
    assert decision_events(again, first, unchanged) == []


def test_changed_thresholds_event_shows_old_and_new() -> None:
    before = _plan(LLAMA)
    status = new_status(before, InferenceThresholdsStatus(), OK, T0)
    after = _plan({**LLAMA, "context": {"environment": "development"}}, generation=2)
    events = decision_events(after, status, SyncOutcome("updated", "updated"))
    changed = next(e for e in events if e.reason == "ThresholdsChanged")
    assert "minTokensPerSecond" in changed.message and "→" in changed.message
    new = new_status(after, status, SyncOutcome("updated", "u"), T1)
    assert new.last_computed_time == T1 and new.observed_generation == 2


def test_override_applied_and_recorded() -> None:
    plan = _plan(
        {
            **LLAMA,
            "context": {"overrides": {"maxLatencyMs": 1234}},
            "overrides": {"minTokensPerSecond": 0.5},
        }
    )
    assert plan.effective.min_tokens_per_second == 0.5
    assert plan.effective.max_latency_ms == 1234
    events = decision_events(plan, InferenceThresholdsStatus(), OK)
    # Part of the pass's one Normal Event, after the thresholds it explains.
    override = next(e for e in events if e.reason == "ThresholdsComputed")
    assert "explicit thresholds: " in override.message.split(" | ")[1]
    assert "minTokensPerSecond=0.5 (spec.overrides)" in override.message
    assert "maxLatencyMs=1234 (spec.context.overrides)" in override.message


def test_no_matching_nodes() -> None:
    plan = _plan({**LLAMA, "nodeSelector": {"matchLabels": {"pool": "nowhere"}}})
    status = new_status(plan, InferenceThresholdsStatus(), OK, T0)
    assert _cond(status, "Ready") == ("False", "NoMatchingNodes")
    assert _cond(status, "Feasible") == ("Unknown", "NoMatchingNodes")
    assert status.nodes_matched == 0
    assert [e.reason for e in decision_events(plan, InferenceThresholdsStatus(), OK)] == [
        "NoMatchingNodes",
        "ConfigMapWritten",
    ]


def test_infeasible_everywhere() -> None:
    plan = _plan({**LLAMA, "nodeSelector": {"matchLabels": {"pool": "tiny"}}})
    status = new_status(plan, InferenceThresholdsStatus(), OK, T0)
    assert _cond(status, "Ready") == ("False", "ModelDoesNotFit")
    assert status.effective.wire() == {} and status.classes[0].feasible is False
    assert status.classes[0].reason


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": {"preset": "no-such-model"}}, "spec.model.preset"),
        ({"model": {}}, "spec.model"),
        ({"model": {"preset": "llama-3.1-8b"}, "context": {"environment": "moon"}}, "environment"),
        ({"model": {"parametersBillion": -1}}, "spec.model.parametersBillion"),
    ],
)
def test_invalid_spec_names_the_field_and_keeps_old_state(spec: dict[str, Any], field: str) -> None:
    good = new_status(_plan(LLAMA), InferenceThresholdsStatus(), OK, T0)
    plan = _plan(spec, generation=2)
    assert plan.invalid is not None and field in plan.invalid
    status = new_status(plan, good, None, T1)
    assert _cond(status, "Ready") == ("False", "InvalidSpec")
    assert status.observed_generation == 2
    assert status.effective == good.effective and status.classes == good.classes
    events = decision_events(plan, good, None)
    assert [e.reason for e in events] == ["InvalidSpec"]
    # Reported once, not again on the next pass.
    assert decision_events(plan, status, None) == []


def test_configmap_rendering_is_deterministic_with_legacy_keys() -> None:
    plan = _plan(LLAMA)
    assert plan.document is not None
    owner = Owner("demo", "ns", "uid-1")
    a = desired_configmap(plan.document, name="demo-thresholds", env_prefix="BITNET_", owner=owner)
    b = desired_configmap(
        _plan(LLAMA).document,  # type: ignore[arg-type]
        name="demo-thresholds",
        env_prefix="BITNET_",
        owner=owner,
    )
    assert a == b
    data = a["data"]
    assert {"BITNET_MIN_TOKENS_PER_SECOND", "BITNET_MAX_LATENCY_MS", "BITNET_MAX_MEMORY_MB"} <= (
        data.keys()
    )
    doc = ThresholdsDocument.model_validate(json.loads(data["thresholds.json"]))
    assert doc == plan.document
    assert a["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "inference-thresholds",
        "thresholds.inference.dev/owner": "demo",
    }
    ref = a["metadata"]["ownerReferences"][0]
    assert ref["uid"] == "uid-1" and ref["controller"] is True
    custom = render_data(plan.document, "APP_")
    assert "APP_MIN_TOKENS_PER_SECOND" in custom and not any(k.startswith("BITNET") for k in custom)


def test_configmap_publishes_its_hash_and_env_keys_for_the_client() -> None:
    """The two keys the pod-side client uses to recognise envFrom copies of this ConfigMap."""
    plan = _plan(LLAMA)
    assert plan.document is not None
    data = render_data(plan.document, "APP_")
    assert data[CONTENT_HASH_KEY] == plan.document.content_hash == document_hash(plan.document)
    published = parse_published_env(data[PUBLISHED_ENV_KEY])
    thresholds = {k: v for k, v in data.items() if k.startswith("APP_")}
    assert published == thresholds and len(thresholds) >= 3


def test_env_values_and_owner_labels() -> None:
    assert env_value(5000.0) == "5000" and env_value(2.05002) == "2.05"
    assert owner_label_value("demo") == "demo"
    long = owner_label_value("x" * 80)
    assert len(long) <= 63 and long != owner_label_value("x" * 81)


def test_metrics_series_vanish_with_their_cr() -> None:
    metrics = OperatorMetrics()
    status = new_status(_plan(LLAMA), InferenceThresholdsStatus(), OK, T0)
    metrics.state.update("ns", "demo", status)
    metrics.state.update("ns", "other", status)
    text = metrics.exposition().decode()
    assert (
        'inference_thresholds_effective_min_tokens_per_second{name="demo",namespace="ns"}' in text
    )
    assert 'inference_thresholds_class_max_memory_bytes{class="' in text
    assert 'inference_thresholds_resources{condition="Ready",status="True"} 2.0' in text
    # valid text format: every family once, with its samples, beside the registry's
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert len(families["inference_thresholds_nodes_matched"].samples) == 2
    assert "inference_thresholds_reconciles" in families
    per_class = families["inference_thresholds_class_min_tokens_per_second"].samples
    assert {s.labels["name"] for s in per_class} == {"demo", "other"}
    # name[]: only what was asked for
    only = metrics.exposition(["inference_thresholds_nodes_matched"]).decode()
    assert [f.name for f in text_string_to_metric_families(only)] == [
        "inference_thresholds_nodes_matched"
    ]
    metrics.state.forget("ns", "demo")
    text = metrics.exposition().decode()
    assert 'name="demo"' not in text
    assert 'inference_thresholds_resources{condition="Ready",status="True"} 1.0' in text


def test_metrics_endpoint_serves_the_exposition_and_name_filters() -> None:
    metrics = OperatorMetrics()
    status = new_status(_plan(LLAMA), InferenceThresholdsStatus(), OK, T0)
    metrics.state.update("ns", "demo", status)
    metrics.reconciles.labels("ok").inc()
    server = serve_metrics(metrics, "127.0.0.1", 0)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/metrics"
        with urllib.request.urlopen(base, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            full = resp.read().decode()
        url = f"{base}?name[]=inference_thresholds_reconciles_total"
        with urllib.request.urlopen(url, timeout=10) as resp:
            one = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "inference_thresholds_nodes_matched{" in full and "build_info" in full
    assert 'inference_thresholds_reconciles_total{result="ok"} 1.0' in one
    assert "nodes_matched" not in one and "build_info" not in one


def test_a_pass_merges_its_normal_decisions_and_keeps_each_warning() -> None:
    normal = [
        DecisionEvent("Normal", "ClassesFound", "2 node(s) in 2 hardware class(es): a; b"),
        DecisionEvent("Warning", "ModelDoesNotFit", "b: too small"),
        DecisionEvent("Normal", "ThresholdsChanged", "minTokensPerSecond 5 → 4 (class a)"),
        DecisionEvent("Normal", "ConfigMapWritten", "updated ConfigMap x (content 1234)"),
    ]
    assert merged(normal) == [
        DecisionEvent(
            "Normal",
            "ThresholdsChanged",
            "minTokensPerSecond 5 → 4 (class a) | updated ConfigMap x (content 1234)"
            " | 2 node(s) in 2 hardware class(es): a; b",
        ),
        DecisionEvent("Warning", "ModelDoesNotFit", "b: too small"),
    ]
    # A single decision, or Warnings only, are posted as they are.
    alone = [DecisionEvent("Normal", "ConfigMapWritten", "created ConfigMap x (content 1)")]
    assert merged(alone) == alone
    warnings = [normal[1], DecisionEvent("Warning", "SpecWarning", "w")]
    assert merged(warnings) == warnings
    # Classes come last, so the Event size limit cuts the class list, not the thresholds.
    long = [
        DecisionEvent("Normal", "ClassesFound", "many classes: " + "x" * 2000),
        DecisionEvent("Normal", "ThresholdsComputed", "effective: minTokensPerSecond=9"),
    ]
    (one,) = merged(long)
    assert one.message.startswith("effective: minTokensPerSecond=9 | many classes: ")
    assert len(one.message) == EVENT_MESSAGE_LIMIT and one.message.endswith("...")
