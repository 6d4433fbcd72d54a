"""CPU physics: measured bandwidth per core and per pod, ISA kernel rates, overlap."""

from __future__ import annotations

from typing import Any

import pytest

from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.engine import compute
from inference_thresholds.engine.policy import Policy

QWEN_05B = {
    "parametersBillion": 0.494,
    "layers": 24,
    "hiddenSize": 896,
    "vocabSize": 151936,
    "kvHeads": 2,
    "headDim": 64,
    "tiedEmbeddings": True,
    "runtime": "llama.cpp",
}


def model(bits: float, **kw: Any) -> ModelSpec:
    return ModelSpec.model_validate({**QWEN_05B, "weightBits": bits, **kw})


def measured(per_core: float, aggregate: float, threads: int, isa: list[str]) -> HardwareProfile:
    return HardwareProfile.model_validate(
        {
            "cpu": {
                "vendor": "amd",
                "model": "AMD EPYC",
                "architecture": "x86_64",
                "physicalCores": 64,
                "usableCores": 64,
                "maxFrequencyMHz": 3000,
                "isa": isa,
            },
            "memory": {
                "totalMiB": 65536,
                "bandwidthGBps": aggregate,
                "bandwidthSource": "measured",
                "bandwidthThreads": threads,
                "perCoreBandwidthGBps": per_core,
            },
        }
    )


def ctx(cores: float, prompt: int = 256, output: int = 64) -> DeploymentContext:
    return DeploymentContext.model_validate(
        {
            "device": "cpu",
            "workload": {"promptTokens": prompt, "outputTokens": output},
            "constraints": {"cpuCores": cores},
        }
    )


def decisions(hw: HardwareProfile, m: ModelSpec, c: DeploymentContext) -> dict[str, Any]:
    return {d.step: d for d in compute(hw, m, c).decisions}


def expected(hw: HardwareProfile, m: ModelSpec, c: DeploymentContext) -> tuple[float, float]:
    e = compute(hw, m, c).expected
    assert e.decode_tokens_per_second and e.time_to_first_token_ms
    return e.decode_tokens_per_second, e.time_to_first_token_ms


AVX2 = ["avx", "avx2", "fma", "f16c"]


def test_measured_bandwidth_is_used_per_core_and_for_the_pods_cores() -> None:
    hw = measured(per_core=17, aggregate=22, threads=2, isa=AVX2)
    one = decisions(hw, model(16), ctx(1))["cpu.usableBandwidth"]
    two = decisions(hw, model(16), ctx(2))["cpu.usableBandwidth"]
    eff = Policy().cpu.bandwidth_efficiency["measured"]
    assert one.value == pytest.approx(17 * eff)  # one core reads what one thread did
    assert two.value == pytest.approx(22 * eff)  # two cores: what two threads did together
    assert "2 probe threads read 22 GB/s" in two.detail


def test_more_cores_than_probed_reach_at_most_the_family_spec() -> None:
    """A probe with 2 threads is a floor for 32 cores, not their bandwidth."""
    hw = measured(per_core=15, aggregate=25, threads=2, isa=AVX2)
    hw.cpu.model = "AMD EPYC 7763 64-Core Processor"  # Milan: 8 x DDR4-3200 = 205 GB/s
    many = decisions(hw, model(16), ctx(32))["cpu.usableBandwidth"]
    spec_share = Policy().cpu.bandwidth_efficiency["spec"]
    assert many.value == pytest.approx(
        min(32 * 15, 205 * spec_share) * Policy().cpu.bandwidth_efficiency["measured"], rel=1e-3
    )
    unknown = measured(per_core=15, aggregate=25, threads=2, isa=AVX2)  # no family: no more
    assert decisions(unknown, model(16), ctx(32))["cpu.usableBandwidth"].value == pytest.approx(
        25 * Policy().cpu.bandwidth_efficiency["measured"]
    )


def test_a_faster_core_stream_speeds_stream_bound_decode_only() -> None:
    slow = measured(per_core=8, aggregate=30, threads=4, isa=AVX2)
    fast = measured(per_core=16, aggregate=30, threads=4, isa=AVX2)
    f16_slow, _ = expected(slow, model(16), ctx(2))
    f16_fast, _ = expected(fast, model(16), ctx(2))
    assert f16_fast > 1.3 * f16_slow
    log = decisions(slow, model(16), ctx(2))
    assert "per-core memory-stream bound" in log["decode.tokensPerSecond"].detail


def test_q8_decode_on_x86_is_held_to_its_dot_product_rate() -> None:
    """x86 has no repacked Q8_0 kernels: Q8_0 decode is slower per op than Q4_0's."""
    hw = measured(per_core=40, aggregate=200, threads=8, isa=AVX2)
    q8 = decisions(hw, model(8.5), ctx(1))
    q4 = decisions(hw, model(4.5), ctx(1))
    assert q8["decode.computeTime"].value > 1.5 * q4["decode.computeTime"].value
    assert "kernel-compute bound" in q8["decode.tokensPerSecond"].detail


@pytest.mark.parametrize(
    ("isa", "feature"),
    [
        (AVX2, "avx2"),
        ([*AVX2, "avx512f", "avx512_vnni"], "avx512_vnni"),
        ([*AVX2, "avx512f", "avx512_vnni", "amx_int8"], "amx_int8"),
    ],
)
def test_prefill_uses_the_kernel_rate_of_the_best_isa(isa: list[str], feature: str) -> None:
    hw = measured(per_core=17, aggregate=60, threads=4, isa=isa)
    rates = Policy().cpu.prefill_ops_per_cycle[feature]
    log = decisions(hw, model(4.5), ctx(4))
    assert log["cpu.matmulOpsPerCycle"].value == rates.q4
    assert f"q4 prefill kernels on {feature}" in log["cpu.matmulOpsPerCycle"].detail


def test_prefill_time_follows_the_weight_format_kernels() -> None:
    """On AVX2 F16 GEMMs outrun Q8_0's (tinyBLAS F16 vs the unrepacked Q8_0 path)."""
    hw = measured(per_core=17, aggregate=22, threads=2, isa=AVX2)
    _, f16_ttft = expected(hw, model(16), ctx(2, prompt=512))
    _, q8_ttft = expected(hw, model(8.5), ctx(2, prompt=512))
    rates = Policy().cpu.prefill_ops_per_cycle["avx2"]
    assert q8_ttft / f16_ttft == pytest.approx(rates.f16 / rates.q8, rel=0.05)


def test_ttft_scales_with_cores_and_prompt() -> None:
    hw = measured(per_core=17, aggregate=60, threads=8, isa=AVX2)
    _, two = expected(hw, model(4.5), ctx(2, prompt=512))
    _, four = expected(hw, model(4.5), ctx(4, prompt=512))
    _, long = expected(hw, model(4.5), ctx(4, prompt=2048))
    assert two == pytest.approx(2 * four, rel=0.05)
    assert long > 4 * four  # attention grows with the square of the prompt


def test_overlap_loss_zero_means_the_longer_phase_alone() -> None:
    hw = measured(per_core=8, aggregate=200, threads=8, isa=AVX2)  # per-core stream bound
    perfect = Policy.model_validate({"cpu": {"overlapLoss": 0}})
    serial = Policy.model_validate({"cpu": {"overlapLoss": 1}})
    fast = compute(hw, model(4.5), ctx(2), perfect).expected.decode_tokens_per_second
    slow = compute(hw, model(4.5), ctx(2), serial).expected.decode_tokens_per_second
    default = compute(hw, model(4.5), ctx(2)).expected.decode_tokens_per_second
    assert fast and slow and default
    assert fast > default > slow


def test_cpu_memory_counts_llama_cpps_repacked_4bit_copy() -> None:
    """Q4_0 layers are repacked into a second buffer while the mapped file stays resident
    (TinyLlama Q4_0 here: 1185 MiB peak RSS for a 637 MB file)."""
    hw = measured(per_core=17, aggregate=22, threads=2, isa=AVX2)
    q4 = decisions(hw, model(4.5), ctx(2))["memory.required"]
    q8 = decisions(hw, model(8.5), ctx(2))["memory.required"]
    assert "repacked copy" in q4.detail
    assert "repacked copy" not in q8.detail
    gpu = HardwareProfile.model_validate(
        {"gpus": [{"vendor": "nvidia", "product": "NVIDIA L4", "count": 1}]}
    )
    on_gpu = compute(gpu, model(4.5), DeploymentContext()).decisions
    assert "repacked copy" not in next(d for d in on_gpu if d.step == "memory.required").detail
