"""Hostile samples never reach the learned state: out-of-range values are errors (thresholds
held, Adapted=False), and a stored state holding junk is discarded. Hostile credentials
are errors that never echo the secret.

Regression for issue 15 case 4: a 1e308 sample overflowed the learned state to NaN, after
which every status patch failed; negative samples were learned and tightened thresholds.
"""

from __future__ import annotations

import base64
import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds.adaptation.prometheus import Sample, Series
from inference_thresholds.adaptation.state import (
    SIGNALS,
    Target,
    advance,
    basis_from,
    fetch,
    rebase,
)
from inference_thresholds.api import Expected, Thresholds
from inference_thresholds.api.adaptation import AdaptationSpec, AdaptationStatus, SignalState
from inference_thresholds.controller.adaptation_loop import observe

T0 = 1_800_000_000.0
EXPECTED = Expected(decode_tokens_per_second=100.0, time_to_first_token_ms=200.0)
COMPUTED = Thresholds(min_tokens_per_second=50.0, max_time_to_first_token_ms=1000.0)
BASIS = basis_from(EXPECTED, COMPUTED)
# Level queries (one number each): the shape a custom query or llama.cpp's counters give.
SPEC = AdaptationSpec.model_validate(
    {
        "enabled": True,
        "prometheus": {"url": "http://127.0.0.1:9"},
        "source": "custom",
        "queries": {"decodeTokensPerSecond": "decode", "timeToFirstTokenSeconds": "ttft"},
        "interval": "10s",
        "halfLife": "100s",
        "minSamples": 1,
        "history": "0s",
    }
)
TARGETS = [Target("c", (), True)]


class _Api:
    """A Prometheus answering each level query with one number."""

    def __init__(self, decode: float, ttft_seconds: float) -> None:
        self.values = {"decode": decode, "ttft": ttft_seconds}

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        return [Sample({}, T0, self.values[promql])]

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        return []

    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]:
        return []


def _fresh() -> AdaptationStatus:
    state, _ = rebase(None, SPEC, [("c", BASIS)])
    return state


def _wire_is_finite(state: AdaptationStatus) -> None:
    # What a status patch sends: strict JSON (no NaN/Infinity literals).
    json.dumps(state.model_dump(mode="json"), allow_nan=False)


@pytest.mark.parametrize("value", [1e308, -5.0, 1e6])
def test_an_implausible_decode_sample_is_an_error_and_nothing_is_learned(value: float) -> None:
    state = _fresh()
    step = advance(state, SPEC, fetch(SPEC, TARGETS, _Api(value, 0.1), T0), T0)
    assert not step.state.healthy and step.state.reason == "ImplausibleSample"
    assert "minTokensPerSecond query gave" in step.state.message
    assert "not learned" in step.state.message
    assert step.state.classes == state.classes and not step.moves
    _wire_is_finite(step.state)


@pytest.mark.parametrize("seconds", [-0.2, 1e308, 1e5])
def test_an_implausible_ttft_sample_is_an_error(seconds: float) -> None:
    step = advance(_fresh(), SPEC, fetch(SPEC, TARGETS, _Api(80.0, seconds), T0), T0)
    assert step.state.reason == "ImplausibleSample"
    assert "maxTimeToFirstTokenMs" in step.state.message


def test_no_traffic_is_no_data_not_an_error() -> None:
    for decode in (math.nan, math.inf, 0.0):
        step = advance(_fresh(), SPEC, fetch(SPEC, TARGETS, _Api(decode, 0.1), T0), T0)
        assert step.state.healthy, step.state.message


def test_a_stored_state_holding_junk_is_discarded_on_rebase() -> None:
    fresh = _fresh()
    entry = fresh.classes[0].model_copy(
        update={
            "decode": SignalState(samples=3, weight=3, observed=1e300),
            "ttft": SignalState().model_copy(update={"target": math.nan}),
        }
    )
    junk = fresh.model_copy(update={"classes": [entry]})
    state, notes = rebase(junk, SPEC, [("c", BASIS)])
    assert state.classes[0].decode.samples == 0 and state.classes[0].decode.observed is None
    assert state.classes[0].ttft.target is None
    assert sum("non-finite or absurd" in n for n in notes) == 2
    _wire_is_finite(state)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.floats(0, SIGNALS[0].physical_max),
            st.floats(0, SIGNALS[1].physical_max / 1000),
            st.floats(1, 1e6),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_any_sequence_of_admitted_samples_keeps_the_state_finite(
    samples: list[tuple[float, float, float]],
) -> None:
    state, t = _fresh(), T0
    for decode, ttft_seconds, gap in samples:
        state = advance(state, SPEC, fetch(SPEC, TARGETS, _Api(decode, ttft_seconds), t), t).state
        assert state.healthy, state.message
        t += gap
    _wire_is_finite(state)
    state, _ = rebase(state, SPEC, [("c", BASIS)])
    _wire_is_finite(state)


class _Secrets:
    """Kube.request stand-in serving one Secret."""

    def __init__(self, value: bytes) -> None:
        self.value = value

    def request(self, method: str, path: str) -> dict[str, object]:
        return {"data": {"token": base64.b64encode(self.value).decode()}}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (b"\xff\xfe\x00binary", "is not UTF-8 text"),
        (b"abc\r\nX-Injected: yes", "cannot carry"),
        (b"t" * 100_000, "longer than 65536 bytes"),
    ],
)
def test_a_hostile_secret_is_a_credentials_error_that_never_echoes_it(
    value: bytes, needle: str
) -> None:
    spec = AdaptationSpec.model_validate(
        {
            "enabled": True,
            "prometheus": {
                "url": "http://127.0.0.1:9",
                "bearerTokenSecretRef": {"name": "prom", "key": "token"},
            },
        }
    )
    obs = observe(_Secrets(value), "ns", spec, None, TARGETS, T0)  # type: ignore[arg-type]
    assert obs.error is not None and obs.error.reason == "PrometheusCredentialsMissing"
    assert needle in str(obs.error)
    assert "X-Injected" not in str(obs.error) and "ttttt" not in str(obs.error)


def test_extreme_admitted_values_stay_on_the_histogram() -> None:
    """A decode of 5e-324 tok/s is a second per token of 2e323: past any float. It lands
    in the histogram's last bucket instead of overflowing (OverflowError before)."""
    for decode in (5e-324, 1e-300):
        state = advance(_fresh(), SPEC, fetch(SPEC, TARGETS, _Api(decode, 0.1), T0), T0).state
        assert state.healthy, state.message
        _wire_is_finite(state)
