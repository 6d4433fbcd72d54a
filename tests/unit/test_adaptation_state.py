"""Interval transitions: rebase, advance (moves, errors held), apply; presets rendered."""

from __future__ import annotations

import math

import pytest

from inference_thresholds.adaptation import presets
from inference_thresholds.adaptation.prometheus import PrometheusQueryError, PrometheusUnreachable
from inference_thresholds.adaptation.state import (
    Observation,
    advance,
    apply,
    basis_from,
    fetch,
    rebase,
)
from inference_thresholds.api import Expected, Thresholds
from inference_thresholds.api.adaptation import AdaptationSpec, AdaptationStatus

T0 = 1_800_000_000.0
EXPECTED = Expected(decode_tokens_per_second=100.0, time_to_first_token_ms=200.0)
COMPUTED = Thresholds(
    min_tokens_per_second=50.0, max_time_to_first_token_ms=1000.0, max_memory_usage_mb=8000.0
)


def _spec(**kw: object) -> AdaptationSpec:
    base: dict[str, object] = {
        "enabled": True,
        "prometheus": {"url": "http://127.0.0.1:9"},
        "interval": "10s",
        "halfLife": "100s",
        "minSamples": 5,
        "maxStepPercent": 10,
        "labelMatchers": [{"label": "model_name", "value": 'llama "8b"'}],
    }
    base.update(kw)
    return AdaptationSpec.model_validate(base)


def _run(
    spec: AdaptationSpec, state: AdaptationStatus, values: list[tuple[float, float]], t: float
) -> tuple[AdaptationStatus, list[object], float]:
    moves: list[object] = []
    for decode, ttft_ms in values:
        obs = Observation(
            values={"decode": decode, "ttft": ttft_ms}, queries={"decode": "q1", "ttft": "q2"}
        )
        state, m = advance(state, spec, obs, t)
        moves += m
        t += spec.interval_seconds
    return state, moves, t


def test_presets_render_real_metric_names() -> None:
    spec = _spec()
    q = presets.queries(spec)
    assert q.decode_tokens_per_second and q.time_to_first_token_seconds
    decode = presets.render(q.decode_tokens_per_second, spec)
    assert decode == (
        'sum(rate({__name__=~"vllm[:_]inter_token_latency_seconds_count",'
        'model_name="llama \\"8b\\""}[5m])) / '
        'sum(rate({__name__=~"vllm[:_]inter_token_latency_seconds_sum",'
        'model_name="llama \\"8b\\""}[5m]))'
    )
    ttft = presets.render(q.time_to_first_token_seconds, spec)
    assert ttft.startswith(
        'histogram_quantile(0.9, sum by (le) (rate({__name__=~"vllm[:_]time_to_first_token'
    )
    llama = presets.queries(_spec(source="llama-cpp-server"))
    assert llama.time_to_first_token_seconds is None and "histograms" in llama.limits
    assert '"llamacpp[:_]tokens_predicted_seconds_total"' in (llama.decode_tokens_per_second or "")
    assert presets.queries(_spec(source="bitnet-cpp")) == presets.Queries(
        llama.decode_tokens_per_second, None, llama.limits
    )


def test_fetch_scales_seconds_to_ms_and_stops_on_error() -> None:
    spec = _spec()
    answers = iter([42.0, 0.25])
    obs = fetch(spec, lambda q: next(answers))
    assert obs.values == {"decode": 42.0, "ttft": 250.0} and obs.error is None

    def broken(q: str) -> float | None:
        raise PrometheusQueryError("bad_data: parse error")

    obs = fetch(spec, broken)
    assert obs.error is not None and obs.failed_signal == "decode"


def test_learning_then_tightening_within_step_bound() -> None:
    spec = _spec()
    state, notes = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    assert notes == [] and state.thresholds.min_tokens_per_second == 50.0
    # deployment sustains 95 tok/s (threshold-equivalent 47.5 < 50: nothing to tighten)...
    state, moves, t = _run(spec, state, [(95.0, 150.0)] * 4, T0)
    assert moves == [] and state.reason == "Learning"
    # ...but TTFT 150 ms is better than physics' 200 ms: target toward 750 ms only after
    # minSamples; then each move is at most 10 %
    state, moves, t = _run(spec, state, [(95.0, 150.0)] * 30, t)
    ttft = [m for m in moves if m.signal.name == "ttft"]  # type: ignore[attr-defined]
    assert ttft, state.message
    for m in ttft:
        assert m.new >= m.old * 0.9 - 1e-9 and m.new < m.old  # type: ignore[attr-defined]
    assert state.ttft.threshold is not None and state.ttft.threshold < 1000.0
    assert state.ttft.threshold >= 750.0 - 1e-9  # observed x slack = 150 x 5
    assert state.decode.threshold == 50.0


def test_regression_holds_thresholds_and_errors_hold_them_too() -> None:
    spec = _spec()
    state, _ = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    state, _, t = _run(spec, state, [(99.0, 150.0)] * 40, T0)
    before = state.thresholds
    # a sustained regression: 10 tok/s, 5 s TTFT for a long time
    state, moves, t = _run(spec, state, [(10.0, 5000.0)] * 200, t)
    assert moves == []
    assert state.thresholds == before and state.reason == "Holding"
    state2, moves = advance(
        state, spec, Observation(error=PrometheusUnreachable("http://x: refused")), t
    )
    assert moves == [] and not state2.healthy
    assert state2.reason == "PrometheusUnreachable" and "thresholds held" in state2.message
    assert state2.thresholds == before and state2.decode == state.decode


def test_no_data_decays_confidence_and_does_not_move() -> None:
    spec = _spec()
    state, _ = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    state, _, t = _run(spec, state, [(99.0, 150.0)] * 10, T0)
    obs = Observation(values={"decode": None, "ttft": None}, queries={"decode": "q", "ttft": "q"})
    after, moves = advance(state, spec, obs, t - spec.interval_seconds + 100)
    assert moves == [] and after.reason == "NoData"
    assert math.isclose(after.decode.confidence, state.decode.confidence / 2, rel_tol=0.01)
    assert after.thresholds == state.thresholds


def test_rebase_reset_token_and_basis_changes() -> None:
    spec = _spec()
    state, _ = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    state, _, _ = _run(spec, state, [(99.0, 100.0)] * 40, T0)
    tightened = state.ttft.threshold
    assert tightened is not None and tightened < 1000.0
    # same basis: nothing changes
    again, notes = rebase(state, spec, basis_from(EXPECTED, COMPUTED))
    assert notes == [] and again == state
    # computed threshold changes (strictness): adapted value restarts, observations kept
    looser = COMPUTED.model_copy(update={"max_time_to_first_token_ms": 1500.0})
    rebased, notes = rebase(state, spec, basis_from(EXPECTED, looser))
    assert rebased.ttft.threshold == 1500.0 and rebased.ttft.samples == state.ttft.samples
    assert any("computed threshold changed" in n for n in notes)
    # physical expectation changes (new hardware): observations discarded
    faster = EXPECTED.model_copy(update={"time_to_first_token_ms": 100.0})
    rebased, notes = rebase(state, spec, basis_from(faster, COMPUTED))
    assert rebased.ttft.samples == 0 and rebased.ttft.threshold == 1000.0
    # resetToken: everything back to computed
    reset, notes = rebase(state, _spec(resetToken="2026-11-28"), basis_from(EXPECTED, COMPUTED))
    assert reset.ttft.samples == 0 and reset.thresholds.max_time_to_first_token_ms == 1000.0
    assert "resetToken" in notes[0]
    # floors tightened in the spec: clamped right away
    floored, _ = rebase(state, _spec(floors={"minTokensPerSecond": 60}), state.basis)
    assert floored.decode.threshold == 60.0


def test_apply_respects_overrides_and_keeps_other_fields() -> None:
    spec = _spec()
    state, _ = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    state = state.model_copy(
        update={
            "decode": state.decode.model_copy(update={"threshold": 60.0}),
            "ttft": state.ttft.model_copy(update={"threshold": 800.0}),
        }
    )
    out = apply(COMPUTED, state)
    assert out.min_tokens_per_second == 60.0 and out.max_time_to_first_token_ms == 800.0
    assert out.max_memory_usage_mb == 8000.0
    out = apply(COMPUTED, state, frozenset({"min_tokens_per_second"}))
    assert out.min_tokens_per_second == 50.0
    assert apply(COMPUTED, None) == COMPUTED


def test_state_survives_a_restart_via_status_wire() -> None:
    spec = _spec()
    state, _ = rebase(None, spec, basis_from(EXPECTED, COMPUTED))
    state, _, t = _run(spec, state, [(99.0, 120.0)] * 20, T0)
    restored = AdaptationStatus.model_validate(state.wire())
    assert restored == state
    a, _ = advance(
        state, spec, Observation({"decode": 99.0, "ttft": 0.12e3}, {"decode": "q", "ttft": "q"}), t
    )
    b, _ = advance(
        restored,
        spec,
        Observation({"decode": 99.0, "ttft": 0.12e3}, {"decode": "q", "ttft": "q"}),
        t,
    )
    assert a == b


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"prometheus": None}, "prometheus.url is required"),
        ({"source": "custom"}, "source custom needs"),
        ({"interval": "5 minutes"}, "interval"),
        ({"maxStepPercent": 0}, "maxStepPercent"),
        ({"floors": {"minTokensPerSecond": 9}, "ceilings": {"minTokensPerSecond": 5}}, "floors"),
        ({"labelMatchers": [{"label": "bad-name", "value": "x"}]}, "label"),
        ({"prometheus": {"url": "prometheus:9090"}}, "url"),
    ],
)
def test_bad_spec_names_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _spec(**patch)
