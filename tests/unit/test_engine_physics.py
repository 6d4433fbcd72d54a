"""Engine behaviour that physics dictates, on concrete profiles."""

from __future__ import annotations

import pytest

from inference_thresholds.api import (
    DeploymentContext,
    DeviceInfo,
    HardwareProfile,
    ModelSpec,
)
from inference_thresholds.engine import compute
from inference_thresholds.engine.catalog import UnknownPresetError, preset_for_name, resolve_model


def gpu(product: str, count: int = 1, **kw: object) -> HardwareProfile:
    return HardwareProfile.model_validate(
        {"gpus": [{"vendor": "nvidia", "product": product, "count": count, **kw}]}
    )


def cpu(cores: float, bw: float | None = 200.0, **kw: object) -> HardwareProfile:
    profile: dict[str, object] = {
        "cpu": {
            "vendor": "intel",
            "model": "Intel(R) Xeon(R) Platinum 8480+",
            "physicalCores": 56,
            "usableCores": cores,
            "maxFrequencyMHz": 3800,
            "isa": ["avx2", "avx512f", "avx512_vnni", "amx_int8"],
            **kw,
        },
        "memory": {"totalMiB": 512 * 1024},
    }
    if bw is not None:
        profile["memory"] = {"totalMiB": 512 * 1024, "bandwidthGBps": bw, "bandwidthSource": "spec"}
    return HardwareProfile.model_validate(profile)


PROD = DeploymentContext()


def tps(hw: HardwareProfile, model: ModelSpec, ctx: DeploymentContext = PROD) -> float:
    value = compute(hw, model, ctx).expected.decode_tokens_per_second
    assert value is not None
    return value


def test_decode_is_bandwidth_bound_for_7b_on_gpu() -> None:
    model = ModelSpec(preset="llama-2-7b", weight_bits=16, runtime="vllm")
    result = compute(gpu("NVIDIA H100 80GB HBM3"), model, PROD)
    steps = {d.step: d for d in result.decisions}
    assert "memory-bandwidth bound" in steps["decode.tokensPerSecond"].detail
    # 13.5 GB per token at 3350 GB/s cannot exceed 250 tok/s whatever the efficiency.
    assert result.expected.decode_tokens_per_second is not None
    assert 60 < result.expected.decode_tokens_per_second < 3350 / 13.48


def test_quantization_speeds_up_decode_and_reports_speedup() -> None:
    hw = gpu("NVIDIA GeForce RTX 3090")
    fp16 = tps(hw, ModelSpec(preset="llama-2-7b", weight_bits=16))
    q4 = compute(hw, ModelSpec(preset="llama-2-7b", weight_bits=4.5), PROD)
    assert q4.expected.decode_tokens_per_second is not None
    assert q4.expected.decode_tokens_per_second > 1.8 * fp16
    assert q4.expected.speedup_factor is not None and q4.expected.speedup_factor > 1.8
    assert q4.thresholds.min_speedup_factor is not None
    assert 1.0 <= q4.thresholds.min_speedup_factor < q4.expected.speedup_factor


def test_fp16_model_has_no_speedup_threshold_and_says_why() -> None:
    result = compute(gpu("NVIDIA L4"), ModelSpec(preset="llama-3.2-1b"), PROD)
    assert result.thresholds.min_speedup_factor is None
    why = next(d for d in result.decisions if d.step == "threshold.minSpeedupFactor")
    assert "16-bit" in why.detail


def test_cpu_pod_with_few_cores_is_core_limited() -> None:
    model = ModelSpec(preset="llama-3.1-8b", weight_bits=4.5)
    two = tps(cpu(2), model)
    fifty = tps(cpu(48), model)
    assert two < fifty
    result = compute(cpu(2), model, PROD)
    usable = next(d for d in result.decisions if d.step == "cpu.usableBandwidth")
    assert "core-limited" in usable.detail
    assert usable.value == pytest.approx(2 * 18.0)


def test_constraints_cpu_cores_caps_usable_cores() -> None:
    model = ModelSpec(preset="bitnet-b1.58-2b-4t")
    limited = DeploymentContext.model_validate({"constraints": {"cpuCores": 1}})
    assert tps(cpu(16), model, limited) < tps(cpu(16), model)


def test_bitnet_output_head_counts_at_f16() -> None:
    result = compute(cpu(16), ModelSpec(preset="bitnet-b1.58-2b-4t"), PROD)
    per_token = next(d for d in result.decisions if d.step == "decode.weightBytesPerToken")
    # F16 head 128256 x 2560 x 2 B = 0.66 GB outweighs the ternary body (~0.5 GB).
    assert isinstance(per_token.value, float)
    assert 1.0 < per_token.value < 1.3


def test_model_that_does_not_fit_is_infeasible_without_thresholds() -> None:
    result = compute(gpu("Tesla T4"), ModelSpec(preset="llama-3.1-70b", weight_bits=16), PROD)
    assert result.feasible is False
    assert result.reason and "MiB" in result.reason
    assert result.thresholds.min_tokens_per_second is None
    assert result.thresholds.max_memory_usage_mb is None


def test_multi_gpu_node_uses_enough_gpus_for_the_model() -> None:
    hw = gpu("NVIDIA A100-SXM4-80GB", count=8)
    result = compute(hw, ModelSpec(preset="llama-3.1-70b", weight_bits=16, runtime="vllm"), PROD)
    assert result.feasible
    assert result.device is not None and result.device.count == 2
    small = compute(hw, ModelSpec(preset="llama-3.1-8b", runtime="vllm"), PROD)
    assert small.device is not None and small.device.count == 1


def test_vllm_memory_expectation_is_its_preallocation() -> None:
    result = compute(gpu("NVIDIA L40S"), ModelSpec(preset="llama-3.1-8b", runtime="vllm"), PROD)
    assert result.expected.memory_required_mib == pytest.approx(48 * 1024 * 0.9, rel=1e-3)
    assert result.thresholds.max_memory_usage_mb is not None
    assert result.thresholds.max_memory_usage_mb <= 48 * 1024


def test_kv_cache_grows_with_context_and_concurrency() -> None:
    model = ModelSpec(preset="llama-2-7b")
    short = compute(gpu("NVIDIA H200"), model, PROD)
    long = compute(
        gpu("NVIDIA H200"),
        model,
        DeploymentContext.model_validate(
            {"workload": {"promptTokens": 4000, "outputTokens": 96, "concurrency": 8}}
        ),
    )
    assert short.expected.memory_required_mib is not None
    assert long.expected.memory_required_mib is not None
    # Llama-2-7B: 512 KiB per token; 8 x 4096 tokens = 16 GiB of KV cache more.
    extra = long.expected.memory_required_mib - short.expected.memory_required_mib
    assert extra == pytest.approx(8 * 4096 * 0.5 - 640 * 0.5, rel=0.01)


def test_prefill_scales_with_prompt_length() -> None:
    model = ModelSpec(preset="llama-2-7b", runtime="tensorrt-llm")
    ttfts = []
    for prompt in (128, 2048):
        ctx = DeploymentContext.model_validate({"workload": {"promptTokens": prompt}})
        value = compute(gpu("NVIDIA A100-SXM4-80GB"), model, ctx).expected.time_to_first_token_ms
        assert value is not None
        ttfts.append(value)
    assert ttfts[1] > 5 * ttfts[0]


def test_partial_profile_falls_back_to_tables_and_says_so() -> None:
    result = compute(gpu("NVIDIA A10G"), ModelSpec(preset="mistral-7b"), PROD)
    bw = next(d for d in result.decisions if d.step == "device.memoryBandwidthGBps")
    assert bw.source == "table" and bw.value == 600


def test_unknown_accelerator_without_bandwidth_gets_null_threshold_with_reason() -> None:
    hw = HardwareProfile(accelerators=[DeviceInfo(vendor="acme", product="Mystery NPU")])
    result = compute(hw, ModelSpec(preset="llama-3.2-1b"), PROD)
    assert result.thresholds.min_tokens_per_second is None
    why = next(d for d in result.decisions if d.step == "decode.tokensPerSecond")
    assert "memoryBandwidthGBps" in why.detail


def test_cpu_without_bandwidth_uses_family_table_then_estimate() -> None:
    table = compute(cpu(8, bw=None), ModelSpec(preset="llama-3.2-1b"), PROD)
    src = next(d for d in table.decisions if d.step == "memory.bandwidth")
    assert src.source == "table" and "Sapphire" in src.detail
    unknown = cpu(8, bw=None, model="Some Future CPU")
    est = compute(unknown, ModelSpec(preset="llama-3.2-1b"), PROD)
    src = next(d for d in est.decisions if d.step == "memory.bandwidth")
    assert src.source == "estimate"


def test_device_gpu_requested_without_gpus_is_a_clear_error() -> None:
    ctx = DeploymentContext.model_validate({"device": "gpu"})
    with pytest.raises(ValueError, match=r"context\.device"):
        compute(cpu(8), ModelSpec(preset="llama-3.2-1b"), ctx)


def test_presets_and_name_matching() -> None:
    assert preset_for_name("Meta-Llama-3.1-8B-Instruct") == "llama-3.1-8b"
    assert preset_for_name("LLaMA-3.1-8B-Instruct") == "llama-3.1-8b"
    assert preset_for_name("BitNet b1.58 7B") is None
    spec, _ = resolve_model(ModelSpec(preset="llama-2-7b", weight_bits=4.5))
    assert spec.layers == 32 and spec.weight_bits == 4.5
    with pytest.raises(UnknownPresetError, match=r"model\.preset"):
        resolve_model(ModelSpec(preset="gpt-9"))
    with pytest.raises(UnknownPresetError, match="parametersBillion"):
        resolve_model(ModelSpec(name="something"))


def test_every_decision_has_a_source_and_thresholds_trace_back() -> None:
    result = compute(gpu("NVIDIA L4"), ModelSpec(preset="qwen2.5-7b", weight_bits=4.5), PROD)
    steps = {d.step for d in result.decisions}
    for needed in (
        "decode.tokensPerSecond",
        "prefill.timeToFirstToken",
        "memory.required",
        "policy.floor",
        "threshold.minTokensPerSecond",
        "threshold.maxTimeToFirstTokenMs",
        "threshold.maxMemoryUsageMb",
    ):
        assert needed in steps
    assert result.thresholds.max_latency_ms is not None
    t = result.thresholds
    assert t.min_tokens_per_second and t.max_time_to_first_token_ms
    assert t.max_latency_ms == pytest.approx(
        t.max_time_to_first_token_ms + 128 * 1000 / t.min_tokens_per_second, rel=1e-2
    )


def test_weight_only_quantized_prefill_pays_for_dequantization() -> None:
    """vLLM's 4-bit GEMMs dequantize in the kernel: a long prompt prefills slower than FP16,
    while decode, which streams fewer bytes, gets faster."""
    hw = gpu("NVIDIA A100-SXM4-80GB")
    ctx = DeploymentContext.model_validate({"workload": {"promptTokens": 4096}})
    base = {"parametersBillion": 8.0, "layers": 32, "kvHeads": 8, "headDim": 128, "runtime": "vllm"}
    fp16 = compute(hw, ModelSpec.model_validate({**base, "weightBits": 16}), ctx).expected
    awq = compute(hw, ModelSpec.model_validate({**base, "weightBits": 4.25}), ctx).expected
    assert fp16.time_to_first_token_ms and awq.time_to_first_token_ms
    assert awq.time_to_first_token_ms > 1.15 * fp16.time_to_first_token_ms
    assert (awq.decode_tokens_per_second or 0) > (fp16.decode_tokens_per_second or 0)
