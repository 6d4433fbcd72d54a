"""Adaptation inside the reconcile core (real engine): plan, ConfigMap data, status, Events."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from inference_thresholds import engine
from inference_thresholds.adaptation.histogram import Distribution
from inference_thresholds.adaptation.prometheus import PrometheusUnreachable
from inference_thresholds.adaptation.state import (
    ClassObservation,
    Observation,
    Reading,
    advance,
)
from inference_thresholds.api.adaptation import AdaptationSpec, AdaptationStatus
from inference_thresholds.api.crd import InferenceThresholdsStatus
from inference_thresholds.controller.configmap import SyncOutcome, render_data
from inference_thresholds.controller.metrics import AdaptationCollector
from inference_thresholds.controller.node_index import node_record
from inference_thresholds.controller.operator_state import CrState
from inference_thresholds.controller.plan import Plan, make_plan
from inference_thresholds.controller.plan_adaptation import interval_events
from inference_thresholds.controller.reconcile_pass import previous_status
from inference_thresholds.controller.status import new_status

NOW = "2026-01-01T00:00:00Z"
T = 1_800_000_000.0


def _node(name: str, cpu: str, memory: str) -> Any:
    return node_record(
        {
            "metadata": {"name": name, "labels": {}},
            "status": {"capacity": {"cpu": cpu, "memory": memory}},
        }
    )


NODES = {"cpu-1": _node("cpu-1", "16", "64Gi")}
TWO_CLASSES = {"cpu-1": _node("cpu-1", "16", "64Gi"), "big-1": _node("big-1", "64", "256Gi")}
OK = SyncOutcome("created", "created")


def _spec(**adaptation: Any) -> dict[str, Any]:
    return {
        "model": {"preset": "llama-3.1-8b"},
        "adaptation": {
            "enabled": True,
            "prometheus": {"url": "http://127.0.0.1:9"},
            "interval": "10s",
            "halfLife": "30s",
            "minSamples": 2,
            "maxStepPercent": 10,
            **adaptation,
        },
    }


def _plan(spec: dict[str, Any], learned: AdaptationStatus | None = None, nodes: Any = None) -> Plan:
    return make_plan(
        name="demo", namespace="ns", generation=1, raw_spec=spec, nodes=nodes or NODES,
        compute=engine.compute, resolve=engine.resolve_model, adaptation=learned,
    )  # fmt: skip


def _aspec(spec: dict[str, Any]) -> AdaptationSpec:
    plan = _plan(spec)
    assert plan.spec is not None
    return plan.spec.adaptation


def _observe(state: AdaptationStatus, factor: float, t: float) -> Observation:
    """Every adapted class decoding at ``factor`` x its expected speed."""
    classes = {}
    for entry in state.classes:
        expected = entry.basis.expected_decode_tokens_per_second
        assert expected is not None
        dist = Distribution.point(1 / (factor * expected))
        classes[entry.name] = ClassObservation(
            live={"decode": Reading(t, dist)}, queries={"decode": "q"}
        )
    return Observation(classes)


def _learned(
    spec: dict[str, Any], factor: float, n: int = 30, nodes: Any = None
) -> AdaptationStatus:
    """State after ``n`` intervals observing ``factor`` x the expected decode speed."""
    state = _plan(spec, nodes=nodes).adaptation.state
    assert state is not None
    aspec = _aspec(spec)
    for i in range(n):
        state = advance(state, aspec, _observe(state, factor, T + 10 * i), T + 10 * i).state
    return state


def test_adapted_thresholds_reach_effective_class_document_and_env_keys() -> None:
    spec = _spec()
    computed = _plan(spec).effective.min_tokens_per_second
    state = _learned(spec, 1.5)
    plan = _plan(spec, state)
    result = plan.adaptation
    assert result.enabled and result.events == []
    adapted = plan.effective.min_tokens_per_second
    assert computed is not None and adapted is not None and adapted > computed
    assert adapted == state.classes[0].decode.threshold
    cls = next(c for c in plan.classes if c.name == plan.effective_class)
    assert cls.result is not None and cls.result.thresholds.min_tokens_per_second == adapted
    assert any(d.step == "adaptation.minTokensPerSecond" for d in cls.result.decisions)
    assert plan.document is not None and plan.document.effective.min_tokens_per_second == adapted
    data = render_data(plan.document, "BITNET_")
    assert abs(float(data["BITNET_MIN_TOKENS_PER_SECOND"]) - adapted) < 1e-3 * adapted
    doc = json.loads(data["thresholds.json"])
    assert any(
        "adaptation.minTokensPerSecond" in line
        for line in doc["classes"][plan.effective_class]["decisions"]
    )


def test_recommend_mode_leaves_the_document_as_computed() -> None:
    spec = _spec(mode="Recommend")
    computed = _plan(_spec(enabled=False))
    state = _learned(spec, 1.5)
    plan = _plan(spec, state)
    learned = state.classes[0].decode.threshold
    assert learned is not None and learned > (computed.effective.min_tokens_per_second or 0)
    assert plan.effective == computed.effective
    assert plan.document is not None and computed.document is not None
    assert render_data(plan.document, "BITNET_") == render_data(computed.document, "BITNET_")
    status = new_status(plan, InferenceThresholdsStatus(), OK, NOW)
    assert status.adaptation is not None
    assert status.adaptation.classes[0].thresholds.min_tokens_per_second == learned
    # switching to Apply puts the same learned value into the document, with an Event
    applied = _plan(_spec(), state)
    assert applied.effective.min_tokens_per_second == learned
    assert [e.reason for e in applied.adaptation.events] == ["AdaptationModeChanged"]


def test_per_class_adaptation_with_a_node_label() -> None:
    spec = _spec(nodeLabel="node")
    plan = _plan(spec, nodes=TWO_CLASSES)
    assert len(plan.classes) == 2
    state = plan.adaptation.state
    assert state is not None and len(state.classes) == 2
    assert state.classes[0].name == plan.effective_class  # effective first
    assert set(plan.adaptation.class_nodes) == {c.name for c in plan.classes}
    assert sorted(n for nodes in plan.adaptation.class_nodes.values() for n in nodes) == [
        "big-1", "cpu-1"
    ]  # fmt: skip
    learned = _learned(spec, 1.5, nodes=TWO_CLASSES)
    adapted = _plan(spec, learned, nodes=TWO_CLASSES)
    for cls in adapted.classes:
        entry = learned.entry(cls.name)
        assert entry is not None and cls.result is not None
        assert cls.result.thresholds.min_tokens_per_second == entry.decode.threshold
        assert entry.decode.threshold > entry.basis.computed_min_tokens_per_second  # type: ignore[operator]
    # without nodeLabel only the effective class adapts
    plain = _plan(_spec(), nodes=TWO_CLASSES).adaptation.state
    assert plain is not None and [c.name for c in plain.classes] == [plan.effective_class]


def test_status_carries_state_and_adapted_condition_then_survives_restart() -> None:
    spec = _spec()
    plan = _plan(spec, _learned(spec, 1.5))
    result = plan.adaptation
    previous = InferenceThresholdsStatus()
    status = new_status(plan, previous, OK, NOW)
    cond = status.condition("Adapted")
    assert cond is not None and cond.status.value == "True"
    assert cond.reason in ("Tightened", "Holding")
    assert status.adaptation == result.state
    restored = previous_status(CrState(), "uid", status.wire()).adaptation
    assert restored == result.state
    again = _plan(spec, restored)
    assert again.effective == plan.effective
    junk = {"adaptation": {"classes": [{"name": "x", "decode": {"samples": -1}}]}}
    assert previous_status(CrState(), "uid", junk).adaptation is None  # dropped, not fatal


def test_overrides_win_and_disabling_drops_state() -> None:
    spec = _spec()
    spec["overrides"] = {"minTokensPerSecond": 1.0}
    plan = _plan(spec, _learned(_spec(), 1.5))
    assert plan.effective.min_tokens_per_second == 1.0

    off = _spec(enabled=False)
    plan = _plan(off, _learned(_spec(), 1.5))
    result = plan.adaptation
    assert not result.enabled and result.state is None
    previous = new_status(_plan(_spec()), InferenceThresholdsStatus(), OK, NOW)
    assert previous.condition("Adapted") is not None
    status = new_status(plan, previous, OK, NOW)
    assert status.adaptation is None and status.condition("Adapted") is None


def test_invalid_spec_keeps_status_adaptation() -> None:
    good = _plan(_spec(), _learned(_spec(), 1.5))
    previous = new_status(good, InferenceThresholdsStatus(), OK, NOW)
    assert previous.adaptation is not None
    bad_spec = _spec(history="60d")
    bad = _plan(bad_spec, previous.adaptation)
    assert bad.invalid is not None and "history" in bad.invalid
    assert bad.adaptation.keep_status and bad.adaptation.state == previous.adaptation
    status = new_status(bad, previous, None, NOW)
    assert status.adaptation == previous.adaptation
    assert status.condition("Adapted") == previous.condition("Adapted")


def test_basis_change_rebases_with_an_event() -> None:
    state = _learned(_spec(), 1.5)
    stricter = _spec()
    stricter["context"] = {"environment": "development"}
    plan = _plan(stricter, state)
    result = plan.adaptation
    assert result.state is not None
    old, new = state.classes[0], result.state.classes[0]
    assert new.basis.computed_min_tokens_per_second != old.basis.computed_min_tokens_per_second
    assert {e.reason for e in result.events} == {"AdaptationRebased"}
    assert any("minTokensPerSecond: computed threshold changed" in e.message for e in result.events)
    assert new.decode.samples == old.decode.samples
    assert plan.effective.min_tokens_per_second == new.basis.computed_min_tokens_per_second


def test_interval_events_one_per_move_and_per_health_change() -> None:
    spec = _spec()
    state = _plan(spec).adaptation.state
    assert state is not None
    aspec = _aspec(spec)
    down = advance(state, aspec, Observation(error=PrometheusUnreachable("refused")), T)
    events = interval_events(state, down, aspec.mode)
    assert [e.type for e in events] == ["Warning"] and events[0].reason == "AdaptationFailed"
    still = advance(down.state, aspec, Observation(error=PrometheusUnreachable("refused")), T + 10)
    assert interval_events(down.state, still, aspec.mode) == []  # not one per failing interval
    up = advance(still.state, aspec, _observe(still.state, 1.0, T + 20), T + 20)
    assert [e.reason for e in interval_events(still.state, up, aspec.mode)] == ["AdaptationResumed"]
    # moves: ThresholdAdapted in Apply, ThresholdRecommended in Recommend
    learned = _learned(spec, 1.5, n=3)
    moving = advance(learned, aspec, _observe(learned, 1.5, T + 30), T + 30)
    assert moving.moves
    assert {e.reason for e in interval_events(learned, moving, aspec.mode)} == {"ThresholdAdapted"}
    recommend = _aspec(_spec(mode="Recommend"))
    assert {e.reason for e in interval_events(learned, moving, recommend.mode)} == {
        "ThresholdRecommended"
    }


def test_collector_exports_per_class_series_and_vanishes() -> None:
    states: dict[tuple[str, str], AdaptationStatus] = {("ns", "demo"): _learned(_spec(), 1.5)}
    cls = states[("ns", "demo")].classes[0].name
    registry = CollectorRegistry()
    registry.register(AdaptationCollector(lambda: states))
    text = generate_latest(registry).decode()
    ratio = f'inference_thresholds_observed_to_expected_ratio{{class="{cls}",name="demo",'
    line = text.split(ratio, 1)[1].split("\n")[0]
    assert 'signal="decode"}' in line and abs(float(line.rsplit(" ", 1)[1]) - 1.5) < 0.075
    assert 'inference_thresholds_adaptation_healthy{name="demo",namespace="ns"} 1.0' in text
    assert f'inference_thresholds_learned_min_tokens_per_second{{class="{cls}",mode="Apply"' in text
    assert "inference_thresholds_adaptation_confidence" in text
    states.clear()
    assert 'name="demo"' not in generate_latest(registry).decode()
