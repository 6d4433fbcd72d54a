"""Hostile samples never reach the learned state: out-of-range values are errors (thresholds
held, Adapted=False), and no sequence of bounded samples overflows the state. Hostile
credentials are errors that never echo the secret.

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

from inference_thresholds.adaptation.state import (
    SIGNALS,
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
SPEC = AdaptationSpec.model_validate(
    {
        "enabled": True,
        "prometheus": {"url": "http://127.0.0.1:9"},
        "interval": "10s",
        "halfLife": "100s",
        "minSamples": 1,
    }
)


def _fresh() -> AdaptationStatus:
    state, _ = rebase(None, SPEC, basis_from(EXPECTED, COMPUTED))
    return state


def _wire_is_finite(state: AdaptationStatus) -> None:
    # What a status patch sends: strict JSON (no NaN/Infinity literals).
    json.dumps(state.model_dump(mode="json"), allow_nan=False)


@pytest.mark.parametrize("value", [1e308, -5.0, 1e6, math.inf, -math.inf])
def test_an_implausible_decode_sample_is_an_error_and_nothing_is_learned(value: float) -> None:
    state = _fresh()
    obs = fetch(SPEC, lambda q: value if "inter_token" in q else 0.1)
    new, moves = advance(state, SPEC, obs, T0)
    assert not new.healthy and new.reason == "ImplausibleSample"
    assert "minTokensPerSecond query gave" in new.message and "not learned" in new.message
    assert new.decode == state.decode and new.thresholds == state.thresholds and not moves
    _wire_is_finite(new)


@pytest.mark.parametrize("seconds", [-0.2, 1e308, 1e5])
def test_an_implausible_ttft_sample_is_an_error(seconds: float) -> None:
    obs = fetch(SPEC, lambda q: 80.0 if "inter_token" in q else seconds)
    new, _ = advance(_fresh(), SPEC, obs, T0)
    assert new.reason == "ImplausibleSample" and "maxTimeToFirstTokenMs" in new.message


def test_a_stored_state_holding_junk_is_discarded_on_rebase() -> None:
    junk = _fresh().model_copy(
        update={
            "decode": SignalState(samples=3, weight=3, mean=1e300, variance=1e308),
            "ttft": SignalState().model_copy(update={"mean": math.nan}),
        }
    )
    state, notes = rebase(junk, SPEC, basis_from(EXPECTED, COMPUTED))
    assert state.decode.samples == 0 and state.decode.mean is None
    assert state.ttft.mean is None
    assert sum("non-finite or absurd" in n for n in notes) == 2
    _wire_is_finite(state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.floats(0, SIGNALS[0].physical_max),
            st.floats(0, SIGNALS[1].physical_max / 1000),
            st.floats(1, 1e6),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_any_sequence_of_admitted_samples_keeps_the_state_finite(
    samples: list[tuple[float, float, float]],
) -> None:
    state, t = _fresh(), T0
    for decode, ttft_seconds, gap in samples:
        obs = fetch(SPEC, lambda q, d=decode, s=ttft_seconds: d if "inter_token" in q else s)
        state, _ = advance(state, SPEC, obs, t)
        assert state.healthy, state.message
        t += gap
    _wire_is_finite(state)
    state, _ = rebase(state, SPEC, basis_from(EXPECTED, COMPUTED))
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
    obs = observe(_Secrets(value), "ns", spec)  # type: ignore[arg-type]
    assert obs.error is not None and obs.error.reason == "PrometheusCredentialsMissing"
    assert needle in str(obs.error)
    assert "X-Injected" not in str(obs.error) and "ttttt" not in str(obs.error)
