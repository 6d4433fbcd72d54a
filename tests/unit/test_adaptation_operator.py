"""Adaptation inside the reconcile core (real engine): plan, ConfigMap data, status, Events."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from inference_thresholds import engine
from inference_thresholds.adaptation.state import Observation, advance
from inference_thresholds.api.adaptation import AdaptationStatus
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
NODES = {
    "cpu-1": node_record(
        {
            "metadata": {"name": "cpu-1", "labels": {}},
            "status": {"capacity": {"cpu": "16", "memory": "64Gi"}},
        }
    )
}
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


def _plan(spec: dict[str, Any], learned: AdaptationStatus | None = None) -> Plan:
    return make_plan(
        name="demo", namespace="ns", generation=1, raw_spec=spec, nodes=NODES,
        compute=engine.compute, resolve=engine.resolve_model, adaptation=learned,
    )  # fmt: skip


def _learned(spec: dict[str, Any], factor: float, n: int = 30) -> AdaptationStatus:
    """State after ``n`` intervals observing ``factor`` x the expected decode speed."""
    first = _plan(spec).adaptation
    assert first.state is not None
    state = first.state
    expected = state.basis.expected_decode_tokens_per_second
    assert expected is not None
    aspec = _plan(spec).spec.adaptation  # type: ignore[union-attr]
    for i in range(n):
        obs = Observation({"decode": factor * expected}, {"decode": "q"})
        state, _ = advance(state, aspec, obs, T + 10 * i)
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
    assert adapted == state.decode.threshold
    cls = next(c for c in plan.classes if c.name == plan.effective_class)
    assert cls.result is not None and cls.result.thresholds.min_tokens_per_second == adapted
    assert any(d.step == "adaptation.minTokensPerSecond" for d in cls.result.decisions)
    assert plan.document is not None and plan.document.effective.min_tokens_per_second == adapted
    data = render_data(plan.document, "BITNET_")
    assert (
        float(data["BITNET_MIN_TOKENS_PER_SECOND"]) == float(f"{adapted:.6g}")
        or abs(float(data["BITNET_MIN_TOKENS_PER_SECOND"]) - adapted) < 1e-3 * adapted
    )
    doc = json.loads(data["thresholds.json"])
    assert any(
        "adaptation.minTokensPerSecond" in line
        for line in doc["classes"][plan.effective_class]["decisions"]
    )


def test_status_carries_state_and_adapted_condition_then_survives_restart() -> None:
    spec = _spec()
    plan = _plan(spec, _learned(spec, 1.5))
    result = plan.adaptation
    previous = InferenceThresholdsStatus()
    status = new_status(plan, previous, OK, NOW)
    cond = status.condition("Adapted")
    assert (
        cond is not None and cond.status.value == "True" and cond.reason in ("Tightened", "Holding")
    )
    assert status.adaptation == result.state
    # a restart: state read back from the stored status gives the same plan
    restored = previous_status(CrState(), "uid", status.wire()).adaptation
    assert restored == result.state
    again = _plan(spec, restored)
    assert again.effective == plan.effective
    junk = {"adaptation": {"decode": {"samples": -1}}}
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
    bad_spec = {"model": {"preset": "llama-3.1-8b"}, "adaptation": {"enabled": True}}
    bad = _plan(bad_spec, previous.adaptation)
    assert bad.invalid is not None and "prometheus" in bad.invalid
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
    assert result.state.basis.computed_min_tokens_per_second != (
        state.basis.computed_min_tokens_per_second
    ), "development context should change the computed threshold"
    assert {e.reason for e in result.events} == {"AdaptationRebased"}
    assert any("minTokensPerSecond: computed threshold changed" in e.message for e in result.events)
    # observations are kept, the adapted value restarts from the new computed one
    assert result.state.decode.samples == state.decode.samples
    assert plan.effective.min_tokens_per_second == result.state.basis.computed_min_tokens_per_second


def test_interval_events_one_per_move_and_per_health_change() -> None:
    spec = _spec()
    state = _plan(spec).adaptation.state
    assert state is not None
    aspec = _plan(spec).spec.adaptation  # type: ignore[union-attr]
    from inference_thresholds.adaptation.prometheus import PrometheusUnreachable

    down, _ = advance(state, aspec, Observation(error=PrometheusUnreachable("refused")), T)
    events = interval_events(state, down, [])
    assert [e.type for e in events] == ["Warning"] and events[0].reason == "AdaptationFailed"
    still_down, _ = advance(
        down, aspec, Observation(error=PrometheusUnreachable("refused")), T + 10
    )
    assert interval_events(down, still_down, []) == []  # no Event per failing interval
    up, _ = advance(still_down, aspec, Observation({"decode": 1.0}, {"decode": "q"}), T + 20)
    assert [e.reason for e in interval_events(still_down, up, [])] == ["AdaptationResumed"]


def test_collector_exports_observed_ratio_confidence_and_vanishes() -> None:
    states: dict[tuple[str, str], AdaptationStatus] = {("ns", "demo"): _learned(_spec(), 1.5)}
    registry = CollectorRegistry()
    registry.register(AdaptationCollector(lambda: states))
    text = generate_latest(registry).decode()
    ratio = 'inference_thresholds_observed_to_expected_ratio{name="demo",namespace="ns",'
    assert ratio + 'signal="decode"} 1.5' in text
    assert 'inference_thresholds_adaptation_healthy{name="demo",namespace="ns"} 1.0' in text
    assert "inference_thresholds_adaptation_confidence" in text
    states.clear()
    assert 'name="demo"' not in generate_latest(registry).decode()
