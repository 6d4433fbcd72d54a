"""Thresholds on partitioned and shared GPUs: MIG instances, time-slicing, MPS."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inference_thresholds.api import (
    Constraints,
    DeploymentContext,
    DeviceInfo,
    GpuPartition,
    GpuSharing,
    HardwareProfile,
    ModelSpec,
    ThresholdResult,
)
from inference_thresholds.engine.compute import compute
from inference_thresholds_agent.profile import detect_profile

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
LLAMA_Q4 = ModelSpec(preset="llama-3.1-8b", weight_bits=4.5)


def a100(partitions: list[GpuPartition] | None, **fields: Any) -> HardwareProfile:
    """An A100-80GB as the GFD fallback describes it: no SM count, figures from the table."""
    gpu = DeviceInfo(
        vendor="nvidia",
        product="NVIDIA A100-SXM4-80GB",
        count=8,
        memory_mib=81920,
        mig_enabled=partitions is not None,
        partitions=partitions,
        **fields,
    )
    return HardwareProfile(gpus=[gpu])


def run(
    hw: HardwareProfile, resource: str | None = None, model: ModelSpec = LLAMA_Q4
) -> ThresholdResult:
    return compute(hw, model, DeploymentContext(constraints=Constraints(gpu_resource=resource)))


def step(result: ThresholdResult, name: str) -> Any:
    return next(d for d in result.decisions if d.step == name)


def mig(profile: str, count: int = 7, **fields: Any) -> GpuPartition:
    return GpuPartition(
        resource=f"nvidia.com/mig-{profile}", mig_profile=profile, count=count, **fields
    )


def test_1g_10gb_on_a100_80_gets_an_eighth_of_bandwidth_and_a_seventh_of_the_sms() -> None:
    """NVIDIA MIG user guide, A100 profiles: 1g.10gb = 1/8 memory, 1/7 SMs."""
    whole = run(a100(None))
    sliced = run(a100([mig("1g.10gb", memory_mib=9856)]))
    assert step(sliced, "device.partition").value == "MIG 1g.10gb"
    assert step(sliced, "device.partition.bandwidthShare").value == 0.125
    assert step(sliced, "device.partition.computeShare").value == pytest.approx(1 / 7, abs=1e-4)
    assert step(sliced, "device.partition.memoryMiB").value == 9856
    # Decode is memory-bound: the memory time is eight times the whole GPU's.
    ratio = step(sliced, "decode.memoryTime").value / step(whole, "decode.memoryTime").value
    assert ratio == pytest.approx(8, rel=1e-3)
    assert sliced.device is not None and sliced.device.product == (
        "NVIDIA A100-SXM4-80GB (MIG 1g.10gb)"
    )
    assert sliced.device.count == 1
    tps_whole = whole.thresholds.min_tokens_per_second
    tps_slice = sliced.thresholds.min_tokens_per_second
    assert tps_whole is not None and tps_slice is not None
    assert tps_slice < tps_whole / 4  # held to a slice, not to a whole A100
    assert sliced.expected.time_to_first_token_ms > whole.expected.time_to_first_token_ms  # type: ignore[operator]


def test_profile_name_alone_gives_the_shares() -> None:
    """GFD without memory or SM labels: the shares come from the profile's name."""
    share = step(run(a100([mig("3g.40gb")])), "device.partition.bandwidthShare")
    assert share.value == 0.5  # 4 of 8 memory slices
    compute_share = step(run(a100([mig("3g.40gb")])), "device.partition.computeShare")
    assert compute_share.value == pytest.approx(3 / 7, abs=1e-4)
    assert "MIG user guide" in compute_share.detail


def test_nvml_sm_counts_win_over_the_nominal_fraction() -> None:
    hw = a100([mig("1g.10gb", memory_mib=9856, multiprocessors=14)], sm_count=108)
    share = step(run(hw), "device.partition.computeShare")
    assert share.value == pytest.approx(14 / 108, abs=1e-4) and "14 of 108 SMs" in share.detail


def test_a_compute_instance_shares_its_gpu_instances_bandwidth() -> None:
    hw = a100([GpuPartition(resource="nvidia.com/mig-1c.2g.20gb", mig_profile="1c.2g.20gb")])
    result = run(hw)
    assert step(result, "device.partition.bandwidthShare").value == pytest.approx(2 / 8 / 2)
    assert step(result, "device.partition.computeShare").value == pytest.approx(1 / 7, abs=1e-4)


def test_model_that_fits_a_gpu_but_not_the_slice_is_infeasible() -> None:
    fp16 = ModelSpec(preset="llama-3.1-8b")
    hw = a100([mig("1g.10gb", memory_mib=9856), mig("3g.40gb", count=2, memory_mib=40192)])
    small = run(hw, "nvidia.com/mig-1g.10gb", fp16)
    large = run(hw, "nvidia.com/mig-3g.40gb", fp16)
    assert not small.feasible and "MIG 1g.10gb" in (small.reason or "")
    assert large.feasible


def test_time_slicing_is_a_conservative_floor_and_keeps_memory() -> None:
    shared = GpuPartition(resource="nvidia.com/gpu", sharing=GpuSharing.TIME_SLICING, replicas=4)
    whole, sliced = run(a100(None)), run(a100([shared]))
    assert step(sliced, "device.partition").value == "whole GPU, time-slicing 1/4"
    assert step(sliced, "device.partition.bandwidthShare").value == 0.25
    assert "conservative floor" in step(sliced, "device.partition.bandwidthShare").detail
    assert step(sliced, "device.partition.memoryMiB").value == 81920  # not partitioned
    ratio = step(sliced, "decode.memoryTime").value / step(whole, "decode.memoryTime").value
    assert ratio == pytest.approx(4, rel=1e-3)


def test_mps_limits_memory_too() -> None:
    part = GpuPartition(resource="nvidia.com/gpu", sharing=GpuSharing.MPS, replicas=4)
    result = run(a100([part]))
    assert step(result, "device.partition.memoryMiB").value == 81920 / 4
    assert step(result, "device.partition.computeShare").value == 0.25


def test_shared_mig_instance_multiplies_the_shares() -> None:
    part = mig("1g.10gb", sharing=GpuSharing.TIME_SLICING, replicas=2)
    result = run(a100([part]))
    assert step(result, "device.partition").value == "MIG 1g.10gb, time-slicing 1/2"
    assert step(result, "device.partition.bandwidthShare").value == 0.0625


def test_unknown_replica_count_is_said() -> None:
    result = run(a100([GpuPartition(sharing=GpuSharing.MPS)]))
    assert step(result, "device.partition.bandwidthShare").value == 1.0
    assert "unknown replica count" in step(result, "device.partition.bandwidthShare").detail


def test_default_is_what_a_plain_gpu_request_gets_else_the_smallest() -> None:
    with_whole = a100([GpuPartition(resource="nvidia.com/gpu"), mig("3g.40gb", count=2)])
    assert step(run(with_whole), "device.partition").value == "whole GPU"
    only_slices = a100([mig("3g.40gb", count=2), mig("1g.10gb")])
    picked = run(only_slices)
    assert step(picked, "device.partition").value == "MIG 1g.10gb"
    assert "gpuResource" in step(picked, "device.partition.request").detail


def test_requested_resource_not_offered_names_the_field_and_the_choices() -> None:
    with pytest.raises(ValueError, match=r"constraints\.gpuResource nvidia\.com/mig-2g\.20gb"):
        run(a100([mig("1g.10gb")]), "nvidia.com/mig-2g.20gb")
    with pytest.raises(ValueError, match=r"offers nvidia\.com/gpu \(whole GPU\)"):
        run(a100(None), "nvidia.com/mig-1g.10gb")


def test_gpu_resource_on_a_node_without_gpus_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"gpuResource nvidia\.com/gpu: the hardware profile"):
        run(HardwareProfile(), "nvidia.com/gpu")


def test_whole_gpu_request_on_whole_gpus_changes_nothing() -> None:
    assert run(a100(None), "nvidia.com/gpu").expected == run(a100(None)).expected


def test_nvml_only_instances_match_the_mixed_strategy_name() -> None:
    hw = a100([GpuPartition(mig_profile="1g.10gb+me", count=1), mig("3g.40gb", count=2)])
    result = run(hw, "nvidia.com/mig-1g.10gb.me")
    assert step(result, "device.partition").value == "MIG 1g.10gb+me"


@pytest.mark.parametrize(
    ("fixture", "resource", "slice_name", "bandwidth_share"),
    [
        ("a100-80gb-mig-mixed", "nvidia.com/mig-1g.10gb", "MIG 1g.10gb", 1 / 8),
        ("a100-80gb-mig-mixed", "nvidia.com/mig-3g.40gb", "MIG 3g.40gb", 4 / 8),
        ("a100-80gb-mig-mixed", "nvidia.com/gpu", None, None),
        ("a100-40gb-mig-single", None, "MIG 1g.5gb", 1 / 8),
        ("hgx-h100-mig", "nvidia.com/mig-4g.40gb", "MIG 4g.40gb", 4 / 8),
        ("h200-nvl-mig", None, "MIG 1g.18gb", 1 / 8),
        ("t4-mps", None, "whole GPU, mps", 1.0),
    ],
)
def test_agent_fixtures_give_slice_scaled_thresholds(
    fixture: str, resource: str | None, slice_name: str | None, bandwidth_share: float | None
) -> None:
    hw = detect_profile(HOSTS / fixture)
    result = run(hw, resource, ModelSpec(preset="bitnet-b1.58-2b-4t"))
    assert result.feasible and result.thresholds.min_tokens_per_second
    names = {d.step: d for d in result.decisions}
    if slice_name is None:  # the whole GPU of the mixed node
        assert "device.partition" not in names
        return
    assert names["device.partition"].value == slice_name
    assert names["device.partition.bandwidthShare"].value == pytest.approx(bandwidth_share)
    assert result.device is not None and slice_name in (result.device.product or "")
