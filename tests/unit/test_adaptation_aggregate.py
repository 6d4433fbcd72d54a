"""Decayed aggregation and the confidence that grows with history."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.adaptation import aggregate
from inference_thresholds.api.adaptation import SignalState

T0 = 1_800_000_000.0


def _feed(values: list[float], interval: float, half_life: float) -> SignalState:
    s = SignalState()
    for i, v in enumerate(values):
        s = aggregate.add_sample(s, v, T0 + i * interval, interval=interval, half_life=half_life)
    return s


def test_confidence_is_one_minus_two_to_minus_history_over_half_life() -> None:
    interval, half_life = 60.0, 3600.0
    for n in (1, 10, 60, 120, 240):
        s = _feed([10.0] * n, interval, half_life)
        history = n * interval
        assert math.isclose(s.confidence, 1 - 2 ** (-history / half_life), rel_tol=1e-9)
    assert math.isclose(_feed([1.0] * 60, 60.0, 3600.0).confidence, 0.5)


def test_old_samples_count_half_after_one_half_life() -> None:
    s = aggregate.add_sample(SignalState(), 100.0, T0, interval=60, half_life=600)
    s = aggregate.add_sample(s, 200.0, T0 + 600, interval=60, half_life=600)
    # weights 0.5 and 1: mean = (50 + 200) / 1.5
    assert math.isclose(s.mean or 0, 250 / 1.5)
    assert math.isclose(s.weight, 1.5)
    assert s.samples == 2 and s.last_value == 200.0
    # weighted variance: 0.5*(100-m)^2 + 1*(200-m)^2 over 1.5
    m = 250 / 1.5
    assert math.isclose(s.variance or 0, (0.5 * (100 - m) ** 2 + (200 - m) ** 2) / 1.5)


def test_gaps_let_confidence_fall() -> None:
    s = _feed([5.0] * 30, 10.0, 100.0)
    later = aggregate.parse_time(s.last_sample_time)
    assert later is not None
    c = aggregate.decayed_confidence(s, later + 100.0, interval=10.0, half_life=100.0)
    assert math.isclose(c, s.confidence / 2, rel_tol=1e-6)


@given(st.lists(st.floats(min_value=0.0, max_value=1e6), min_size=1, max_size=50))
def test_mean_stays_within_observed_range(values: list[float]) -> None:
    s = _feed(values, 30.0, 300.0)
    assert s.mean is not None
    assert min(values) - 1e-6 <= s.mean <= max(values) + 1e-6
    assert 0.0 <= s.confidence <= 1.0
    assert s.samples == len(values)


def test_state_round_trips_through_the_wire() -> None:
    s = _feed([1.0, 2.0, 3.0], 60.0, 600.0)
    again = SignalState.model_validate(s.wire())
    assert again == s
