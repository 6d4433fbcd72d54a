"""Property tests: thresholds finite and positive, monotone where physics says so."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.engine import compute

ENVIRONMENTS = ["development", "testing", "staging", "production", "edge"]
RUNTIMES = ["llama.cpp", "vllm", "tensorrt-llm", "gpt-fast", "bitnet.cpp", "other"]


@st.composite
def cpu_profiles(draw: st.DrawFn, bandwidth: float | None = None) -> HardwareProfile:
    cores = draw(st.integers(1, 128))
    return HardwareProfile.model_validate(
        {
            "cpu": {
                "vendor": draw(st.sampled_from(["intel", "amd", "arm", "apple"])),
                "physicalCores": cores,
                "usableCores": draw(st.floats(0.5, cores, allow_nan=False)),
                "maxFrequencyMHz": draw(st.floats(1000, 5500)),
                "isa": draw(
                    st.lists(
                        st.sampled_from(
                            ["avx2", "avx512_vnni", "amx_int8", "neon", "asimddp", "i8mm"]
                        ),
                        max_size=3,
                    )
                ),
            },
            "memory": {
                "totalMiB": 1024 * 1024,
                "bandwidthGBps": bandwidth or draw(st.floats(10, 1000)),
                "bandwidthSource": "spec",
            },
        }
    )


@st.composite
def gpu_profiles(draw: st.DrawFn, bandwidth: float | None = None) -> HardwareProfile:
    return HardwareProfile.model_validate(
        {
            "gpus": [
                {
                    "vendor": "nvidia",
                    "product": "Test GPU",
                    "count": draw(st.integers(1, 8)),
                    "memoryMiB": 1024 * 1024,
                    "memoryBandwidthGBps": bandwidth or draw(st.floats(100, 10000)),
                    "fp16Tflops": draw(st.floats(10, 3000)),
                }
            ]
        }
    )


@st.composite
def models(draw: st.DrawFn, params: float | None = None) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "parametersBillion": params or draw(st.floats(0.1, 200)),
            "weightBits": draw(st.sampled_from([2.0, 4.5, 8.0, 16.0])),
            "runtime": draw(st.sampled_from(RUNTIMES)),
            "layers": draw(st.integers(8, 128)),
            "kvHeads": draw(st.integers(1, 64)),
            "headDim": draw(st.sampled_from([64, 128, 256])),
        }
    )


@st.composite
def contexts(draw: st.DrawFn, environment: str | None = None) -> DeploymentContext:
    return DeploymentContext.model_validate(
        {
            "environment": environment or draw(st.sampled_from(ENVIRONMENTS)),
            "priority": draw(st.sampled_from(["latency", "throughput", "memory", "balanced"])),
            "strictness": draw(st.sampled_from(["lenient", "standard", "strict"])),
            "workload": {
                "promptTokens": draw(st.integers(1, 8192)),
                "outputTokens": draw(st.integers(1, 2048)),
                "concurrency": draw(st.integers(1, 16)),
            },
        }
    )


profiles = st.one_of(cpu_profiles(), gpu_profiles())


@settings(max_examples=300, deadline=None)
@given(profiles, models(), contexts())
def test_thresholds_are_finite_and_positive(
    hw: HardwareProfile, model: ModelSpec, ctx: DeploymentContext
) -> None:
    result = compute(hw, model, ctx)
    values = result.thresholds.model_dump(exclude_none=True).values()
    if result.feasible:
        assert result.thresholds.min_tokens_per_second is not None
    for value in values:
        assert math.isfinite(value) and value > 0


@settings(max_examples=200, deadline=None)
@given(st.data(), models(), contexts(), st.floats(10, 5000), st.floats(1.01, 4))
def test_more_bandwidth_never_lowers_expected_tps(
    data: st.DataObject, model: ModelSpec, ctx: DeploymentContext, bw: float, factor: float
) -> None:
    kind = data.draw(st.sampled_from(["cpu", "gpu"]))
    make = cpu_profiles if kind == "cpu" else gpu_profiles
    lo = data.draw(make(bandwidth=bw))
    hi = lo.model_copy(deep=True)
    if kind == "cpu":
        assert hi.memory.bandwidth_gbps is not None
        hi.memory.bandwidth_gbps *= factor
    else:
        assert hi.gpus[0].memory_bandwidth_gbps is not None
        hi.gpus[0].memory_bandwidth_gbps *= factor
    a = compute(lo, model, ctx).expected.decode_tokens_per_second
    b = compute(hi, model, ctx).expected.decode_tokens_per_second
    assert a is not None and b is not None
    assert b >= a * (1 - 1e-9)


@settings(max_examples=200, deadline=None)
@given(profiles, models(params=1.0), contexts(), st.floats(1.01, 100))
def test_bigger_model_never_raises_expected_tps(
    hw: HardwareProfile, model: ModelSpec, ctx: DeploymentContext, factor: float
) -> None:
    assert model.parameters_billion is not None
    bigger = model.model_copy(update={"parameters_billion": model.parameters_billion * factor})
    small = compute(hw, model, ctx)
    big = compute(hw, bigger, ctx)
    if small.feasible and big.feasible:
        a, b = small.expected.decode_tokens_per_second, big.expected.decode_tokens_per_second
        assert a is not None and b is not None
        assert b <= a * (1 + 1e-9)


@settings(max_examples=200, deadline=None)
@given(profiles, models(), contexts(environment="development"))
def test_production_never_looser_than_development(
    hw: HardwareProfile, model: ModelSpec, dev: DeploymentContext
) -> None:
    prod = dev.model_copy(update={"environment": "production"})
    d, p = compute(hw, model, dev), compute(hw, model, prod)
    if not d.feasible:
        return
    dt, pt = d.thresholds, p.thresholds
    assert pt.min_tokens_per_second is not None and dt.min_tokens_per_second is not None
    assert pt.min_tokens_per_second >= dt.min_tokens_per_second
    if pt.max_time_to_first_token_ms is not None and dt.max_time_to_first_token_ms is not None:
        assert pt.max_time_to_first_token_ms <= dt.max_time_to_first_token_ms
    if pt.max_memory_usage_mb is not None and dt.max_memory_usage_mb is not None:
        assert pt.max_memory_usage_mb <= dt.max_memory_usage_mb
