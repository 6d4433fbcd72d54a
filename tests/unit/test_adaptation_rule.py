"""The tightening rule: bounded steps, floors and ceilings, and no downward drag."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from inference_thresholds.adaptation.rule import Direction, Inputs, bounds, start, step

positive = st.floats(min_value=0.1, max_value=1e4, allow_nan=False, allow_infinity=False)
fraction = st.floats(min_value=0.01, max_value=1.0)


def _min_inputs(**kw: object) -> Inputs:
    base: dict[str, object] = dict(
        direction=Direction.MIN,
        expected=100.0,
        computed=50.0,
        current=None,
        observed=90.0,
        confidence=1.0,
        samples=30,
        min_samples=30,
        max_step=0.05,
    )
    base.update(kw)
    return Inputs(**base)  # type: ignore[arg-type]


def test_target_blends_computed_and_observed_by_confidence() -> None:
    out = step(_min_inputs(confidence=0.5))
    # slack 0.5: observed 90 -> 45... below computed: nothing to tighten
    assert not out.moved
    out = step(_min_inputs(observed=100.0, expected=100.0, computed=80.0, confidence=0.5))
    # target = 80 + 0.5 * (100*0.8 - 80) = 80: no move
    assert out.target == 80.0 and not out.moved
    out = step(_min_inputs(observed=100.0, expected=200.0, computed=80.0, confidence=0.5))
    # slack 0.4, observed threshold 40 < 80: held
    assert not out.moved


def test_tightens_step_limited_toward_better_observed() -> None:
    # expected 100, computed 50 (slack 0.5); observed 180 -> observed threshold 90
    out = step(_min_inputs(expected=100.0, computed=50.0, observed=180.0, confidence=1.0))
    assert out.target == 90.0
    assert out.moved and math.isclose(out.threshold, 52.5)  # 50 * 1.05
    assert "step-limited" in out.note


def test_learning_below_min_samples_never_moves() -> None:
    out = step(_min_inputs(observed=1000.0, samples=29))
    assert not out.moved and out.threshold == 50.0 and "learning: 29/30" in out.note


def test_physical_ceiling_and_configured_bounds() -> None:
    out = step(_min_inputs(current=99.5, observed=1e6, max_step=1.0))
    assert out.threshold == 100.0  # never above the physical expectation
    out = step(_min_inputs(current=60.0, observed=1e6, ceiling=61.0, max_step=1.0))
    assert out.threshold == 61.0
    lo, hi = bounds(_min_inputs(floor=70.0))
    assert (lo, hi) == (70.0, 100.0) and start(_min_inputs(floor=70.0)) == 70.0
    # a floor beyond physics: physics wins
    assert bounds(_min_inputs(floor=150.0)) == (100.0, 100.0)


def test_max_threshold_mirrors() -> None:
    ttft = Inputs(
        direction=Direction.MAX,
        expected=200.0,  # ms, physical
        computed=600.0,  # slack 3
        current=None,
        observed=100.0,  # better than physics says: observed threshold 300
        confidence=1.0,
        samples=40,
        min_samples=30,
        max_step=0.1,
    )
    out = step(ttft)
    assert out.moved and math.isclose(out.threshold, 540.0)  # 600 * 0.9
    worse = step(Inputs(**{**ttft.__dict__, "current": 540.0, "observed": 5000.0}))
    assert not worse.moved and worse.threshold == 540.0
    floor = step(Inputs(**{**ttft.__dict__, "current": 205.0, "observed": 1.0, "max_step": 1.0}))
    assert floor.threshold == 200.0  # never below the physical expectation


@settings(max_examples=300, deadline=None)
@given(
    expected=positive,
    slack=st.floats(min_value=0.05, max_value=1.0),
    observations=st.lists(positive, min_size=1, max_size=40),
    confidence=fraction,
    max_step=st.floats(min_value=0.001, max_value=1.0),
    floor_frac=st.none() | st.floats(min_value=0.0, max_value=1.5),
    ceiling_frac=st.none() | st.floats(min_value=0.0, max_value=1.5),
)
def test_min_threshold_properties(
    expected: float,
    slack: float,
    observations: list[float],
    confidence: float,
    max_step: float,
    floor_frac: float | None,
    ceiling_frac: float | None,
) -> None:
    computed = expected * slack
    floor = None if floor_frac is None else expected * floor_frac
    ceiling = None if ceiling_frac is None else expected * ceiling_frac
    if floor is not None and ceiling is not None and floor > ceiling:
        floor, ceiling = ceiling, floor
    current: float | None = None
    for obs in observations:
        i = Inputs(
            Direction.MIN,
            expected,
            computed,
            current,
            obs,
            confidence,
            50,
            30,
            max_step,
            floor,
            ceiling,
        )
        lo, hi = bounds(i)
        before = min(max(current if current is not None else start(i), lo), hi)
        out = step(i)
        # bounds: never above physics or the ceiling, never below the floor (physics wins)
        assert out.threshold <= expected * (1 + 1e-12)
        if ceiling is not None:
            assert out.threshold <= ceiling * (1 + 1e-12)
        if floor is not None:  # a floor above physics or the ceiling yields to them
            assert out.threshold >= min(floor, expected, ceiling or math.inf) * (1 - 1e-12)
        # no downward drag: a step never lowers the threshold
        assert out.threshold >= before * (1 - 1e-12)
        # step bound
        assert out.threshold <= before * (1 + max_step) * (1 + 1e-12)
        current = out.threshold


@settings(max_examples=200, deadline=None)
@given(
    good=st.floats(min_value=50.0, max_value=100.0),
    bad=st.floats(min_value=0.01, max_value=49.0),
    n_good=st.integers(min_value=1, max_value=50),
    n_bad=st.integers(min_value=1, max_value=200),
)
def test_sustained_regression_never_lowers(
    good: float, bad: float, n_good: int, n_bad: int
) -> None:
    current: float | None = None
    for _ in range(n_good):
        current = step(_min_inputs(current=current, observed=good, expected=100.0)).threshold
    peak = current
    for _ in range(n_bad):
        current = step(_min_inputs(current=current, observed=bad, expected=100.0)).threshold
    assert current == peak
