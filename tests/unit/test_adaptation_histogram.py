"""The decaying histogram: runtime buckets in, quantiles out as histogram_quantile reads them.

tests/cluster/test_adaptation_prometheus.py compares the operator's quantile of one
interval with the real Prometheus' histogram_quantile over the same window.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.adaptation import histogram
from inference_thresholds.adaptation.histogram import Distribution

# vLLM's time_to_first_token_seconds buckets, with counts
VLLM_TTFT = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5]


def _promql_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """PromQL's histogram_quantile (bucketQuantile), written out for the comparison."""
    buckets = sorted(buckets)
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    raise AssertionError("unreachable")


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9, 0.99])
def test_quantile_matches_histogram_quantile_within_the_grid(q: float) -> None:
    counts = [0, 2, 10, 40, 120, 220, 260, 300, 340, 352, 356, 358, 359]
    buckets = [*zip(VLLM_TTFT, map(float, counts), strict=True), (math.inf, 360.0)]
    dist = Distribution.from_buckets(buckets)
    assert dist is not None
    expected = _promql_quantile(q, buckets)
    got = dist.quantile(q)
    assert got == pytest.approx(expected, rel=histogram.GRID_RATIO - 1)


def test_degenerate_and_hostile_buckets() -> None:
    assert Distribution.from_buckets([(math.inf, 10.0)]) is None  # no shape to read
    assert Distribution.from_buckets([(0.1, 0.0), (math.inf, 0.0)]) is None  # idle
    # non-monotonic counts are forced monotonic, NaN `le` and NaN counts are dropped
    dist = Distribution.from_buckets(
        [(0.1, 5.0), (0.2, 3.0), (math.nan, 9.0), (0.3, math.nan), (0.4, 10.0), (math.inf, 10.0)]
    )
    assert dist is not None and dist.total == 10.0
    # everything in +Inf beyond the last bound counts at that bound, as PromQL does
    tail = Distribution.from_buckets([(0.5, 0.0), (math.inf, 4.0)])
    assert tail is not None and tail.quantile(0.5) == pytest.approx(0.5, rel=0.05)


def test_decay_and_mixture() -> None:
    fast = Distribution.point(0.010)
    slow = Distribution.point(0.100)
    hist = histogram.add({}, fast, 1.0)
    hist = histogram.scale(hist, 0.5)  # one half-life later
    hist = histogram.add(hist, slow, 1.0)
    assert sum(hist.values()) == pytest.approx(1.5)
    # 2/3 of the weight is slow: the median is slow, the 0.2 quantile fast
    assert histogram.quantile(hist, 0.5) == pytest.approx(0.100, rel=0.05)
    assert histogram.quantile(hist, 0.2) == pytest.approx(0.010, rel=0.05)


def test_wire_round_trip_and_hostile_status_entries() -> None:
    dist = Distribution.from_buckets([(0.1, 1.0), (1.0, 3.0)])
    assert dist is not None
    hist = histogram.add({}, dist, 1.0)
    assert histogram.from_wire(histogram.to_wire(hist)) == pytest.approx(hist, rel=1e-8)
    junk = {"-1": 1.0, "abc": 1.0, "99999": 1.0, "5": -3.0, "6": float("nan"), "7": 2.0}
    assert histogram.from_wire(junk) == {7: 2.0}


@given(
    st.lists(st.floats(min_value=1e-3, max_value=100.0), min_size=1, max_size=30),
    st.floats(min_value=0.01, max_value=0.99),
)
def test_quantiles_stay_within_the_observed_range(values: list[float], q: float) -> None:
    hist: histogram.Histogram = {}
    for v in values:
        hist = histogram.add(hist, Distribution.point(v), 1.0)
    got = histogram.quantile(hist, q)
    assert got is not None
    assert min(values) / histogram.GRID_RATIO <= got <= max(values) * histogram.GRID_RATIO
    lower = histogram.quantile(hist, q / 2)
    assert lower is not None and lower <= got + 1e-12
