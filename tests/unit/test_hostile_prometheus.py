"""The Prometheus client against an endpoint that misbehaves on purpose (a real HTTP server on
loopback, ``inference_thresholds_dev.hostile_prometheus``), and a fuzz of its parser.

Regressions for issue 15: case 2 (the timeout applied per read: one byte a second never
timed out), case 3 (a 400 MB body was read whole: 130 MB -> 2.8 GB RSS).
"""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds.adaptation import prometheus
from inference_thresholds.adaptation.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusResponseError,
    PrometheusResponseTooLarge,
    PrometheusTimeout,
    PrometheusUnreachable,
)
from inference_thresholds_dev.hostile_prometheus import HostilePrometheus

DEADLINE = 1.5


@pytest.fixture(scope="module")
def prom() -> Iterator[HostilePrometheus]:
    with HostilePrometheus() as server:
        yield server


def _bounded(call: Callable[[], Any], limit: float) -> tuple[BaseException | None, float]:
    """Run ``call`` in a thread; fail the test (not hang it) if it outlives ``limit``."""
    outcome: list[BaseException | None] = [None]

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            outcome[0] = exc

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"still waiting after {limit:.0f} s: no total deadline"
    return outcome[0], time.monotonic() - started


@pytest.mark.parametrize("mode", ["dribble", "dribble-headers", "silent"])
def test_a_slow_endpoint_is_cut_off_at_the_deadline_for_the_whole_request(
    prom: HostilePrometheus, mode: str
) -> None:
    client = PrometheusClient(prom.url(mode), timeout=DEADLINE)
    error, elapsed = _bounded(lambda: client.query("up"), DEADLINE + 10)
    assert isinstance(error, PrometheusTimeout), error
    assert error.reason == "PrometheusTimeout" and f"within {DEADLINE:g}s" in str(error)
    assert DEADLINE - 0.1 <= elapsed <= DEADLINE + 1.0


@pytest.mark.parametrize("mode", ["huge", "huge-declared"])
def test_a_huge_response_is_refused_while_streaming(prom: HostilePrometheus, mode: str) -> None:
    client = PrometheusClient(prom.url(mode), timeout=30)
    tracemalloc.start()
    try:
        error, elapsed = _bounded(lambda: client.query("up"), 30)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, PrometheusResponseTooLarge), error
    assert error.reason == "ResponseTooLarge"
    assert peak < 4 * prometheus.MAX_RESPONSE_BYTES, f"peak {peak / 2**20:.0f} MiB"
    assert elapsed < 10


@pytest.mark.parametrize(
    ("mode", "error", "needle"),
    [
        ("deep", PrometheusResponseError, "nests deeper than 32"),
        ("types", PrometheusResponseError, "malformed vector result"),
        ("html", PrometheusResponseError, "not JSON"),
        ("redirect", PrometheusUnreachable, r"302 redirect \(not followed\)"),
    ],
)
def test_malformed_answers_are_typed_errors(
    prom: HostilePrometheus, mode: str, error: type[PrometheusError], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        PrometheusClient(prom.url(mode), timeout=10).query_value("up")


def test_many_series_are_refused_with_a_bounded_message(prom: HostilePrometheus) -> None:
    with pytest.raises(PrometheusResponseError, match="10000 series") as err:
        PrometheusClient(prom.url("series"), timeout=10).query_value("up")
    assert len(str(err.value)) < 1000


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42.5", 42.5), ("NaN", None), ("+Inf", None), ("1e999", None), ("1e308", 1e308)],
)
def test_sample_values_are_numbers_or_no_data(
    prom: HostilePrometheus, value: str, expected: float | None
) -> None:
    # 1e308 is a number: whether it is a plausible observation is adaptation's call.
    assert PrometheusClient(prom.url(f"value/{value}")).query_value("up") == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=25,
)
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error", 1, None]),
        "data": st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["vector", "scalar", "matrix", 3]),
                "result": st.lists(
                    st.fixed_dictionaries({"metric": json_values, "value": json_values})
                    | json_values,
                    max_size=3,
                )
                | json_values,
            }
        )
        | json_values,
    }
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.one_of(answers.map(lambda d: json.dumps(d).encode()), st.binary(max_size=200)))
def test_the_parser_only_ever_raises_prometheus_errors(body: bytes) -> None:
    try:
        samples = prometheus._instant(prometheus._data(body))
    except PrometheusError:
        return
    for sample in samples:
        assert isinstance(sample.value, float) and isinstance(sample.timestamp, float)
        assert all(isinstance(v, str) for v in sample.labels.values())
