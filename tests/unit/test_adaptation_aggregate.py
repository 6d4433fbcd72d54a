"""Decayed history and the confidence that grows with it."""

from __future__ import annotations

import math

import pytest

from inference_thresholds.adaptation import aggregate, histogram
from inference_thresholds.adaptation.histogram import Distribution
from inference_thresholds.api.adaptation import SignalState

T0 = 1_800_000_000.0


def _feed(values: list[float], interval: float, half_life: float) -> SignalState:
    s = SignalState()
    for i, v in enumerate(values):
        s = aggregate.add_sample(
            s, Distribution.point(v), T0 + i * interval, interval=interval, half_life=half_life
        )
    return s


def test_confidence_is_one_minus_two_to_minus_history_over_half_life() -> None:
    interval, half_life = 60.0, 3600.0
    for n in (1, 10, 60, 120, 240):
        s = _feed([0.1] * n, interval, half_life)
        history = n * interval
        assert math.isclose(s.confidence, 1 - 2 ** (-history / half_life), rel_tol=1e-6)
    assert math.isclose(_feed([1.0] * 60, 60.0, 3600.0).confidence, 0.5, rel_tol=1e-6)


def test_old_samples_count_half_after_one_half_life() -> None:
    s = aggregate.add_sample(SignalState(), Distribution.point(0.1), T0, interval=60, half_life=600)
    s = aggregate.add_sample(s, Distribution.point(0.2), T0 + 600, interval=60, half_life=600)
    assert math.isclose(s.weight, 1.5, rel_tol=1e-6)
    hist = histogram.from_wire(s.histogram)
    old = hist[histogram.index(0.1)]
    new = hist[histogram.index(0.2)]
    assert math.isclose(old / new, 0.5, rel_tol=1e-6)
    assert s.samples == 2 and s.first_sample_time == aggregate.rfc3339(T0)


def test_a_seeded_point_older_than_the_history_is_decayed_by_its_age() -> None:
    s = aggregate.add_sample(SignalState(), Distribution.point(0.1), T0, interval=60, half_life=600)
    s = aggregate.add_sample(s, Distribution.point(0.2), T0 - 600, interval=60, half_life=600)
    assert math.isclose(s.weight, 1.5, rel_tol=1e-6) and s.last_sample_time == aggregate.rfc3339(T0)


def test_gaps_let_confidence_fall() -> None:
    s = _feed([0.05] * 30, 10.0, 100.0)
    later = aggregate.parse_time(s.last_sample_time)
    assert later is not None
    c = aggregate.decayed_confidence(s, later + 100.0, interval=10.0, half_life=100.0)
    assert math.isclose(c, s.confidence / 2, rel_tol=1e-6)


def test_state_round_trips_through_the_wire() -> None:
    s = _feed([0.1, 0.2, 0.3], 60.0, 600.0)
    again = SignalState.model_validate(s.wire())
    assert again.histogram == pytest.approx(s.histogram) and again.weight == s.weight
