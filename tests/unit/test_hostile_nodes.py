"""Hostile Node objects: whatever a Node holds, reading it never raises, refused values are
named (``rejected``), and what is kept stays within the profile's bounds.

Regression for issue 15 case 1: a valid-size profile annotation of deeply nested JSON
raised RecursionError; absurd capacities (1e300 cores, 1e-300 cores) gave thresholds
with 300-digit numbers.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference_thresholds import engine
from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.api.node_contract import PROFILE_ANNOTATION
from inference_thresholds.controller.configmap import env_value
from inference_thresholds.controller.node_index import node_record

LLAMA = ModelSpec(preset="llama-3.1-8b")


def _node(
    annotations: dict[str, Any] | None = None,
    capacity: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": labels or {}, "annotations": annotations or {}},
        "status": {"capacity": capacity or {"cpu": "16", "memory": "64Gi"}},
    }


def _thresholds_fit_env_values(profile: HardwareProfile) -> None:
    """The engine turns the profile into finite thresholds (or says why it cannot)."""
    try:
        result = engine.compute(profile, LLAMA, DeploymentContext(), None)
    except ValueError:
        return
    for value in result.thresholds.wire().values():
        assert isinstance(value, float | int) and math.isfinite(value)
        assert len(env_value(value)) <= 20, value


def test_deeply_nested_profile_falls_back_and_is_named() -> None:
    record = node_record(_node({PROFILE_ANNOTATION: "[" * 60_000}))
    assert record.hardware.source == "capacity"
    assert record.hardware.profile.cpu.usable_cores == 16
    (problem,) = record.hardware.rejected
    assert PROFILE_ANNOTATION in problem and "nests deeper" in problem


def test_oversized_profile_and_oversized_names_are_refused() -> None:
    big_name = {"gpus": [{"vendor": "nvidia", "product": "A" * 100_000}]}
    small_but_long = {"gpus": [{"vendor": "nvidia", "product": "A" * 5_000}]}
    for profile in (big_name, small_but_long):
        record = node_record(_node({PROFILE_ANNOTATION: json.dumps(profile)}))
        assert record.hardware.source == "capacity" and record.hardware.rejected
        assert len(record.class_name) <= 63


def test_absurd_capacities_are_refused_not_computed_with() -> None:
    for cpu in ("9e999", "1e300", "1e-300", "-4", "NaN", "0"):
        record = node_record(_node(capacity={"cpu": cpu, "memory": "64Gi"}))
        assert record.hardware.profile.cpu.usable_cores is None, cpu
        assert any("status.capacity.cpu" in r for r in record.hardware.rejected), cpu
    record = node_record(_node(capacity={"cpu": "4", "memory": "1e300"}))
    assert record.hardware.profile.memory.total_mib is None
    assert any("status.capacity.memory" in r for r in record.hardware.rejected)


def test_gfd_labels_out_of_range_are_refused() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/gpu.memory": "9" * 62,
        "nvidia.com/gpu.count": "1000000",
    }
    record = node_record(_node(labels=labels))
    gpu = record.hardware.profile.gpus[0]
    assert gpu.memory_mib is None and gpu.count == 1


def test_a_node_that_is_not_node_shaped_still_gives_a_record() -> None:
    for status in ([1, 2], "x", {"capacity": [1]}, {"allocatable": {"cpu": {"a": 1}}}):
        record = node_record({"metadata": {"name": "odd"}, "status": status})
        assert record.name == "odd" and record.hardware.source == "capacity"


quantities = st.one_of(
    st.sampled_from(["16", "3500m", "64Gi", "9e999", "1e300", "1e-300", "-1", "NaN", "+Inf"]),
    st.text(max_size=30),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers().map(str),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=4),
    max_leaves=20,
)
profile_like = st.fixed_dictionaries(
    {},
    optional={
        "cpu": st.dictionaries(
            st.sampled_from(["model", "vendor", "physicalCores", "usableCores", "isa"]),
            json_values,
        ),
        "memory": st.dictionaries(st.sampled_from(["totalMiB", "bandwidthGBps"]), json_values),
        "gpus": st.lists(
            st.dictionaries(
                st.sampled_from(["vendor", "product", "count", "memoryMiB", "fp16Tflops"]),
                json_values,
            ),
            max_size=3,
        ),
    },
)
annotations = st.one_of(
    st.text(max_size=200),
    profile_like.map(json.dumps),
    st.integers(min_value=1, max_value=100_000).map(lambda n: "[" * n),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
)
gfd_labels = st.dictionaries(
    st.sampled_from(
        [
            "nvidia.com/gpu.product",
            "nvidia.com/gpu.count",
            "nvidia.com/gpu.memory",
            "nvidia.com/gpu.compute.major",
            "nvidia.com/gpu.compute.minor",
            "feature.node.kubernetes.io/cpu-cpuid.AVX2",
        ]
    ),
    st.text(alphabet="0123456789.-abcdefghijklmnopqrstuvwxyzA", max_size=63),
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    annotation=st.none() | annotations,
    capacity=st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), quantities),
    labels=gfd_labels,
)
def test_any_node_reads_without_raising_and_within_bounds(
    annotation: str | None, capacity: dict[str, str], labels: dict[str, str]
) -> None:
    node = _node({PROFILE_ANNOTATION: annotation} if annotation is not None else {}, capacity)
    node["metadata"]["labels"] = labels
    record = node_record(node)
    # What is kept passes the profile's own bounds again, and names stay label-safe.
    HardwareProfile.model_validate(record.hardware.profile.wire())
    assert len(record.class_name) <= 63
    assert all(len(note) <= 600 for note in record.hardware.notes)
    _thresholds_fit_env_values(record.hardware.profile)


def _within(low: float, high: float) -> st.SearchStrategy[float | None]:
    return st.none() | st.sampled_from([low, high]) | st.floats(low, high)


extreme_profiles = st.builds(
    lambda cores, freq, mem, bw, gpu: {
        "cpu": {"usableCores": cores, "maxFrequencyMHz": freq, "isa": ["avx2"]},
        "memory": {"totalMiB": mem, "bandwidthGBps": bw},
        "gpus": [gpu] if gpu else [],
    },
    _within(0.001, 16384),
    _within(1, 10_000),
    st.none() | st.sampled_from([1, 1 << 27]) | st.integers(1, 1 << 27),
    _within(0.1, 100_000),
    st.none()
    | st.builds(
        lambda mem, bw, tf: {
            "vendor": "nvidia",
            "product": "X",
            "count": 1,
            "memoryMiB": mem,
            "memoryBandwidthGBps": bw,
            "fp16Tflops": tf,
        },
        st.sampled_from([1, 1 << 21]) | st.integers(1, 1 << 21),
        _within(0.1, 100_000),
        _within(0.001, 100_000),
    ),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(extreme_profiles)
def test_profiles_at_the_bounds_give_finite_thresholds(profile: dict[str, Any]) -> None:
    """The bounds are physical: any profile within them yields numbers an env value holds."""
    record = node_record(_node({PROFILE_ANNOTATION: json.dumps(profile)}))
    assert record.hardware.source.startswith("agent"), record.hardware.rejected
    _thresholds_fit_env_values(record.hardware.profile)
