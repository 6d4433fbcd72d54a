"""validate(): pass/fail per threshold, margins, messages."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.api.result import Thresholds
from inference_thresholds.client import METRICS, Observed, ThresholdsError, validate

LIMITS = Thresholds(
    min_tokens_per_second=10,
    max_time_to_first_token_ms=1000,
    max_latency_ms=5000,
    max_memory_usage_mb=8192,
    min_speedup_factor=1.5,
)


def test_all_pass_with_headroom() -> None:
    report = validate(
        Observed(
            tokens_per_second=12.5,
            time_to_first_token_ms=800,
            latency_ms=4000,
            memory_mb=4096,
            speedup_factor=2.0,
        ),
        LIMITS,
    )
    assert report.passed and report.checked == 5 and report.failed == 0
    tps = report.results[0]
    assert tps.threshold == "min_tokens_per_second"
    assert tps.margin == pytest.approx(2.5)
    assert tps.margin_percent == pytest.approx(25.0)
    assert (
        tps.message
        == "decode throughput 12.5 tok/s >= minimum 10 tok/s (headroom 2.5 tok/s, 25.0%)"
    )


def test_failures_say_by_how_much() -> None:
    report = validate({"tokens_per_second": 6, "time_to_first_token_ms": 1200}, LIMITS)
    assert not report.passed and report.failed == 2
    tps, ttft = report.failures
    assert tps.margin == pytest.approx(-4)
    assert (
        tps.message == "decode throughput 6 tok/s is below the minimum 10 tok/s by 4 tok/s (40.0%)"
    )
    assert ttft.message == (
        "time to first token 1200 ms exceeds the maximum 1000 ms by 200 ms (20.0%)"
    )


def test_exact_limit_passes() -> None:
    report = validate({"tokens_per_second": 10, "memory_mb": 8192}, LIMITS)
    assert report.passed and report.checked == 2
    assert all(r.margin == 0 for r in report.results if r.status == "pass")


def test_missing_observed_or_threshold_is_skipped() -> None:
    report = validate({"latency_ms": 100}, Thresholds(min_tokens_per_second=5, max_latency_ms=200))
    statuses = {r.threshold: r.status for r in report.results}
    assert statuses == {
        "min_tokens_per_second": "skipped",  # not measured
        "max_time_to_first_token_ms": "skipped",  # no threshold
        "max_latency_ms": "pass",
        "max_memory_usage_mb": "skipped",
        "min_speedup_factor": "skipped",
    }


def test_nothing_checked_does_not_pass() -> None:
    report = validate({"speedup_factor": 3.0}, Thresholds(min_tokens_per_second=5))
    assert report.checked == 0
    assert not report.passed
    assert "nothing was checked" in report.problems[0]


@pytest.mark.parametrize("raw", [-1, float("nan"), float("inf"), "fast", True])
def test_bad_observed_values_name_the_metric(raw: object) -> None:
    with pytest.raises(ThresholdsError, match=r"observed\.tokens_per_second"):
        validate({"tokens_per_second": raw}, LIMITS)  # type: ignore[dict-item]


def test_unknown_observed_key_lists_valid_ones() -> None:
    with pytest.raises(ThresholdsError, match=r"tps.*use one of.*tokens_per_second"):
        validate({"tps": 3.0}, LIMITS)


def test_report_serialises_camel_case() -> None:
    wire = validate({"tokens_per_second": 12}, LIMITS).wire()
    assert wire["passed"] is True
    assert "marginPercent" in wire["results"][0]  # type: ignore[index]


positive = st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False)
observed_values = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)


@given(limit=positive, observed=observed_values, index=st.integers(0, len(METRICS) - 1))
def test_verdict_matches_bound_and_margin_sign(limit: float, observed: float, index: int) -> None:
    metric = METRICS[index]
    report = validate({metric.observed: observed}, Thresholds(**{metric.threshold: limit}))
    (result,) = [r for r in report.results if r.status != "skipped"]
    holds = observed >= limit if metric.bound == "min" else observed <= limit
    assert (result.status == "pass") == holds == report.passed
    assert result.margin is not None and (result.margin >= 0) == holds
    assert result.margin_percent is not None and math.isfinite(result.margin_percent)


@given(limit=positive, a=observed_values, b=observed_values)
def test_more_throughput_never_turns_pass_into_fail(limit: float, a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    t = Thresholds(min_tokens_per_second=limit)
    if validate({"tokens_per_second": lo}, t).passed:
        assert validate({"tokens_per_second": hi}, t).passed
