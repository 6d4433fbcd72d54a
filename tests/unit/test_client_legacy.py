"""The seed's API shape: PerformanceThresholds.from_environment() over BITNET_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from client_fixtures import BIG, SMALL, envfrom, two_class_document, write_configmap_volume
from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.client import PerformanceThresholds, ThresholdsError


def test_seed_defaults_without_variables() -> None:
    t = PerformanceThresholds.from_environment(env={})
    assert (
        t.min_tokens_per_second,
        t.max_latency_ms,
        t.max_memory_usage_mb,
        t.min_speedup_factor,
    ) == (10.0, 5000.0, 8192.0, 1.5)


def test_each_legacy_variable_is_read() -> None:
    env = {
        "BITNET_MIN_TOKENS_PER_SECOND": "20.5",
        "BITNET_MAX_LATENCY_MS": "3000",
        "BITNET_MAX_MEMORY_MB": "16384",
        "BITNET_MIN_SPEEDUP_FACTOR": "1.8",
    }
    t = PerformanceThresholds.from_environment(env=env)
    assert t == PerformanceThresholds(20.5, 3000.0, 16384.0, 1.8)


def test_custom_prefix_ignores_legacy_names() -> None:
    env = {"LLM_MAX_LATENCY_MS": "700", "BITNET_MAX_LATENCY_MS": "1"}
    assert PerformanceThresholds.from_environment(env=env, prefix="LLM_").max_latency_ms == 700


@pytest.mark.parametrize("raw", ["ten", "NaN", "-3", "0"])
def test_bad_value_is_an_error_naming_the_variable(raw: str) -> None:
    """The seed silently kept the default; a typo must not quietly restore fixed numbers."""
    with pytest.raises(ThresholdsError, match="BITNET_MIN_SPEEDUP_FACTOR"):
        PerformanceThresholds.from_environment(env={"BITNET_MIN_SPEEDUP_FACTOR": raw})


def test_from_environment_over_envfrom_gives_the_configmaps_effective_values() -> None:
    """envFrom of the operator's ConfigMap (threshold keys, content hash, published list):
    the seed API reads the thresholds and nothing else; what it lacks keeps the seed's."""
    t = PerformanceThresholds.from_environment(env=envfrom(two_class_document()))
    assert (t.min_tokens_per_second, t.max_latency_ms, t.max_memory_usage_mb) == (
        SMALL.min_tokens_per_second, SMALL.max_latency_ms, SMALL.max_memory_usage_mb,
    )  # fmt: skip
    assert t.min_speedup_factor == 1.5  # not published: the seed default


def test_load_follows_the_mounted_document_where_the_environment_is_stale(tmp_path: Path) -> None:
    """from_environment() is the container's environment, fixed at start (the seed's
    contract); load() reads the mounted document and ignores envFrom copies."""
    doc = two_class_document()
    mnt = write_configmap_volume(tmp_path / "m", doc)
    older = SMALL.model_copy(update={"max_latency_ms": 9.0})
    old = doc.model_copy(update={"content_hash": "sha256:older", "effective": older})
    env = {"NODE_NAME": "n-big-1", **envfrom(old)}
    assert PerformanceThresholds.from_environment(env=env).max_latency_ms == 9.0
    assert PerformanceThresholds.load(mnt, env=env).max_latency_ms == BIG.max_latency_ms


def test_load_is_node_aware_and_fills_gaps_with_seed_defaults(tmp_path: Path) -> None:
    mnt = write_configmap_volume(tmp_path / "m", two_class_document())
    t = PerformanceThresholds.load(mnt, env={"NODE_NAME": "n-big-1"})
    assert t.min_tokens_per_second == BIG.min_tokens_per_second
    assert t.max_latency_ms == BIG.max_latency_ms
    assert t.min_speedup_factor == 2.0


def test_validate_uses_the_same_report() -> None:
    report = PerformanceThresholds().validate({"tokens_per_second": 9, "latency_ms": 100})
    assert not report.passed
    assert [r.threshold for r in report.failures] == ["min_tokens_per_second"]


@given(st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_round_trips_any_positive_number(value: float) -> None:
    t = PerformanceThresholds.from_environment(env={"BITNET_MAX_MEMORY_MB": repr(value)})
    assert t.max_memory_usage_mb == value
