"""Node object -> hardware profile, merged field by field from the agent's annotation,
GPU Feature Discovery labels, NFD labels and the node's resources (tests/fixtures/nodes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from inference_thresholds import engine
from inference_thresholds.api import DeploymentContext, GpuSharing, HardwareProfile, ModelSpec
from inference_thresholds.api.node_contract import PROFILE_ANNOTATION
from inference_thresholds.controller.classes import class_key, class_name, summary
from inference_thresholds.controller.hardware_source import NodeHardware, node_hardware
from inference_thresholds.controller.node_index import node_record
from inference_thresholds.controller.plan import make_plan
from inference_thresholds_agent.profile import detect_profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GFD = {
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
}
L4 = {
    "nvidia.com/gpu.product": "NVIDIA-L4",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.memory": "23034",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "9",
    "nvidia.com/gpu.replicas": "1",
    "nvidia.com/gpu.sharing-strategy": "none",
}
CPU_ONLY = {"cpu": {"model": "AMD EPYC 7R13", "physicalCores": 8, "usableCores": 8}}


def _node(
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": labels or {}, "annotations": annotations or {}},
        "status": {
            "capacity": capacity or {"cpu": "32", "memory": "131072Mi"},
            "nodeInfo": {"architecture": "arm64"},
        },
    }


def fixture(name: str) -> dict[str, Any]:
    node: dict[str, Any] = yaml.safe_load((FIXTURES / "nodes" / f"{name}.yaml").read_text())
    return node


def with_agent(node: dict[str, Any], profile: HardwareProfile | dict[str, Any]) -> dict[str, Any]:
    wire = profile.wire() if isinstance(profile, HardwareProfile) else profile
    node["metadata"].setdefault("annotations", {})[PROFILE_ANNOTATION] = json.dumps(wire)
    return node


def fields(hw: NodeHardware) -> dict[str, str]:
    return {f.field: f.source for f in hw.fields}


def run(hw: NodeHardware, resource: str | None = None) -> dict[str, Any]:
    context = DeploymentContext.model_validate({"constraints": {"gpuResource": resource}})
    result = engine.compute(hw.profile, ModelSpec(preset="bitnet-b1.58-2b-4t"), context)
    return {d.step: d.value for d in result.decisions}


def test_agent_gpus_win_and_the_rest_is_filled_in() -> None:
    profile = detect_profile(FIXTURES / "hosts" / "dgx-a100-80gb")
    hw = node_hardware(with_agent(_node(GFD), profile))
    assert hw.source == "agent"
    assert hw.profile.gpus[0].product == "NVIDIA A100-SXM4-80GB"  # NVML over the labels
    assert fields(hw)["gpus[0]"] == "agent"


def test_agent_without_gpus_on_a_gfd_node_is_a_gpu_node() -> None:
    """No NVML in the agent's container: the profile has no GPU, GFD says there is an L4."""
    node = with_agent(_node(L4, capacity={"cpu": "8", "nvidia.com/gpu": "1"}), CPU_ONLY)
    hw = node_hardware(node)
    assert hw.source == "agent+gfd+capacity"
    (gpu,) = hw.profile.gpus
    assert (gpu.product, gpu.count, gpu.memory_mib, gpu.compute_capability) == (
        "NVIDIA L4",
        1,
        23034,
        "8.9",
    )
    assert hw.profile.cpu.model == "AMD EPYC 7R13"
    got = fields(hw)
    assert got["cpu"] == "agent" and got["gpus[0].product"] == "gfd"
    assert got["cpu.architecture"] == "capacity"  # a gap in the agent's profile
    assert any("no NVML in its container" in n for n in hw.notes)
    decisions = run(hw)
    assert decisions["device.kind"] == "gpu" and decisions["decode.tokensPerSecond"]


def test_invalid_annotation_falls_back_to_gfd_and_says_so() -> None:
    hw = node_hardware(_node(GFD, {PROFILE_ANNOTATION: '{"cpu": {"physicalCores": -3}}'}))
    assert hw.source == "gfd+capacity"
    assert any(PROFILE_ANNOTATION in note for note in hw.notes)
    gpu = hw.profile.gpus[0]
    assert (gpu.product, gpu.count, gpu.memory_mib, gpu.compute_capability) == (
        "NVIDIA H100 80GB HBM3",
        8,
        81559,
        "9.0",
    )
    assert gpu.partitions is None  # whole GPUs


def test_capacity_only_gpus_make_a_gpu_node_of_unknown_model() -> None:
    hw = node_hardware(fixture("capacity-only-gpus"))
    assert hw.source == "capacity"
    (gpu,) = hw.profile.gpus
    assert (gpu.product, gpu.count) == ("NVIDIA GPU (model unknown)", 8)
    assert hw.profile.cpu.usable_cores == 31.85 and hw.profile.cpu.architecture == "x86_64"
    assert any("model unknown" in n for n in hw.notes)
    decisions = run(hw)
    assert decisions["device.kind"] == "gpu"
    assert decisions["decode.tokensPerSecond"] is None  # no model, no bandwidth: said, not guessed


def test_nfd_labels_add_isa_and_vendor() -> None:
    labels = {
        "feature.node.kubernetes.io/cpu-cpuid.AVX512VNNI": "true",
        "feature.node.kubernetes.io/cpu-cpuid.AVX2": "true",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
    }
    hw = node_hardware(_node(labels))
    assert hw.source == "nfd+capacity"
    assert hw.profile.cpu.isa == ["avx2", "avx512_vnni"] and hw.profile.cpu.vendor == "intel"
    assert fields(hw)["cpu.isa"] == "nfd" and fields(hw)["cpu.usableCores"] == "capacity"


def test_class_names_are_stable_and_distinguish_hardware() -> None:
    a = node_hardware(_node(GFD)).profile
    b = node_hardware({**_node(GFD), "metadata": {"name": "other", "labels": GFD}}).profile
    c = node_hardware(_node({**GFD, "nvidia.com/gpu.count": "4"})).profile
    assert class_key(a) == class_key(b) and class_name(a) == class_name(b)
    assert class_name(a).startswith("gpu-nvidia-h100-80gb-hbm3-x8-")
    assert class_name(c) != class_name(a)
    assert "8x NVIDIA H100 80GB HBM3" in summary(a)
    assert len(class_name(a)) <= 63


def test_gfd_mixed_strategy_lists_each_profile_with_its_resource() -> None:
    hw = node_hardware(fixture("gfd-a100-80gb-mig-mixed"))
    (gpu,) = hw.profile.gpus
    assert (gpu.product, gpu.count, gpu.memory_mib, gpu.mig_enabled) == (
        "NVIDIA A100 SXM4 80GB",
        8,
        81920,
        True,
    )
    assert [
        (p.resource, p.mig_profile, p.count, p.memory_mib, p.multiprocessors, p.compute_slices)
        for p in gpu.partitions or []
    ] == [
        ("nvidia.com/mig-1g.10gb", "1g.10gb", 28, 9856, 14, 1),
        ("nvidia.com/mig-3g.40gb", "3g.40gb", 8, 40192, 42, 3),
    ]  # nvidia.com/gpu is 0: no whole GPU offered
    assert fields(hw)["gpus[0].partitions[mig-1g.10gb]"] == "gfd"
    # Nothing requested: the smallest slice; requested: the one asked for.
    assert run(hw)["device.partition"] == "MIG 1g.10gb"
    assert run(hw, "nvidia.com/mig-3g.40gb")["device.partition.bandwidthShare"] == 0.5


def test_gfd_single_strategy_labels_describe_mig_devices() -> None:
    hw = node_hardware(fixture("gfd-a100-40gb-mig-single"))
    (gpu,) = hw.profile.gpus
    assert gpu.product == "NVIDIA A100 SXM4 40GB" and gpu.memory_mib is None
    assert gpu.count == 8  # 56 devices, at most 7 per GPU
    (part,) = gpu.partitions or []
    assert (part.resource, part.mig_profile, part.count, part.memory_mib) == (
        "nvidia.com/gpu",
        "1g.5gb",
        56,
        4864,
    )
    assert any("not GPUs" in n for n in hw.notes)
    decisions = run(hw)
    assert decisions["device.partition"] == "MIG 1g.5gb"
    assert decisions["device.partition.bandwidthShare"] == 0.125  # 1g.5gb of 40 GB


def test_invalid_single_strategy_offers_nothing() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB-MIG-INVALID",
        "nvidia.com/gpu.count": "0",
        "nvidia.com/mig.strategy": "single",
    }
    hw = node_hardware(_node(labels))
    assert hw.profile.gpus[0].partitions == []
    assert any("offers no GPU" in n for n in hw.notes)
    with pytest.raises(ValueError, match="no MIG instance"):
        run(hw)


@pytest.mark.parametrize(
    ("name", "resource", "sharing", "replicas", "slice_name", "share"),
    [
        (
            "gfd-t4-time-sliced",
            "nvidia.com/gpu",
            "time-slicing",
            4,
            "whole GPU, time-slicing 1/4",
            0.25,
        ),
        ("gfd-a10g-mps", "nvidia.com/gpu", "mps", 2, "whole GPU, mps 1/2", 0.5),
        (
            "gfd-h100-mig-time-sliced",
            "nvidia.com/mig-1g.10gb",
            "time-slicing",
            2,
            "MIG 1g.10gb, time-slicing 1/2",
            1 / 16,
        ),
    ],
)
def test_gfd_sharing_labels(
    name: str, resource: str, sharing: str, replicas: int, slice_name: str, share: float
) -> None:
    hw = node_hardware(fixture(name))
    (gpu,) = hw.profile.gpus
    (part,) = gpu.partitions or []
    assert (part.resource, part.sharing, part.replicas) == (resource, GpuSharing(sharing), replicas)
    assert not gpu.product.endswith("SHARED")
    decisions = run(hw)
    assert decisions["device.partition"] == slice_name
    assert decisions["device.partition.bandwidthShare"] == pytest.approx(share)


def test_renamed_replicas_are_requested_as_gpu_shared() -> None:
    node = fixture("gfd-t4-time-sliced")
    node["metadata"]["labels"]["nvidia.com/gpu.product"] = "Tesla-T4"  # renameByDefault
    node["status"]["allocatable"] = {"cpu": "4", "nvidia.com/gpu.shared": "4"}
    (part,) = node_hardware(node).profile.gpus[0].partitions or []
    assert part.resource == "nvidia.com/gpu.shared" and part.replicas == 4


def test_renamed_mig_replicas_keep_their_profile() -> None:
    labels = {
        "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
        "nvidia.com/mig.strategy": "mixed",
        "nvidia.com/mig-1g.10gb.shared.count": "14",
        "nvidia.com/mig-1g.10gb.shared.replicas": "2",
        "nvidia.com/mig-1g.10gb.shared.sharing-strategy": "time-slicing",
    }
    (part,) = node_hardware(_node(labels)).profile.gpus[0].partitions or []
    assert (part.resource, part.mig_profile, part.sharing, part.replicas) == (
        "nvidia.com/mig-1g.10gb.shared",
        "1g.10gb",
        GpuSharing.TIME_SLICING,
        2,
    )
    # Known only from the resources: the same reading.
    hw = node_hardware(_node(capacity={"nvidia.com/mig-1g.10gb.shared": "14"}))
    (part,) = hw.profile.gpus[0].partitions or []
    assert (part.mig_profile, part.sharing) == ("1g.10gb", GpuSharing.TIME_SLICING)
    media = node_hardware(_node(capacity={"nvidia.com/mig-1g.10gb.me": "1"}))
    assert (media.profile.gpus[0].partitions or [])[0].mig_profile == "1g.10gb+me"


def test_agent_mig_instances_get_their_names_from_the_resources() -> None:
    profile = detect_profile(FIXTURES / "hosts" / "a100-80gb-mig-mixed")
    allocatable = {
        "cpu": "48",
        "nvidia.com/gpu": "1",
        "nvidia.com/mig-1g.10gb": "1",
        "nvidia.com/mig-2g.20gb": "1",
        "nvidia.com/mig-3g.40gb": "1",
    }
    node = with_agent(_node({"nvidia.com/mig.strategy": "mixed"}, capacity=allocatable), profile)
    hw = node_hardware(node)
    mig, whole = hw.profile.gpus
    assert [p.resource for p in mig.partitions or []] == [
        "nvidia.com/mig-1g.10gb",
        "nvidia.com/mig-2g.20gb",
        "nvidia.com/mig-3g.40gb",
    ]
    assert whole.partitions is None
    assert fields(hw)["gpus[0].partitions[1g.10gb].resource"] == "capacity"
    assert hw.source == "agent+capacity"
    assert run(hw, "nvidia.com/gpu")["device.product"] == "NVIDIA A100 80GB PCIe"
    assert run(hw, "nvidia.com/mig-2g.20gb")["device.partition"] == "MIG 2g.20gb"


def test_agent_single_strategy_instances_are_plain_gpus() -> None:
    profile = detect_profile(FIXTURES / "hosts" / "a100-40gb-mig-single")
    labels = {"nvidia.com/mig.strategy": "single"}
    node = with_agent(_node(labels, capacity={"cpu": "24", "nvidia.com/gpu": "14"}), profile)
    (part,) = node_hardware(node).profile.gpus[0].partitions or []
    assert (part.resource, part.count) == ("nvidia.com/gpu", 14)


def test_agent_whole_gpu_gets_sharing_from_gfd() -> None:
    profile = detect_profile(FIXTURES / "hosts" / "t4-mps")  # the agent saw MPS, not replicas
    node = fixture("gfd-a10g-mps")
    node["metadata"]["labels"]["nvidia.com/gpu.product"] = "Tesla-T4-SHARED"
    hw = node_hardware(with_agent(node, profile))
    (part,) = hw.profile.gpus[0].partitions or []
    assert (part.sharing, part.replicas, part.resource) == (GpuSharing.MPS, 2, "nvidia.com/gpu")
    assert fields(hw)["gpus[0].partitions.replicas"] == "gfd"


def test_replicas_inferred_from_resources_without_gfd() -> None:
    profile = detect_profile(FIXTURES / "hosts" / "dgx-a100-80gb")  # 8 whole GPUs
    hw = node_hardware(with_agent(_node(capacity={"cpu": "8", "nvidia.com/gpu": "24"}), profile))
    (part,) = hw.profile.gpus[0].partitions or []
    assert (part.sharing, part.replicas) == (GpuSharing.TIME_SLICING, 3)
    assert any("3 replicas each" in n for n in hw.notes)
    # As many resources as GPUs: nothing is shared.
    plain = node_hardware(with_agent(_node(capacity={"nvidia.com/gpu": "8"}), profile))
    assert plain.profile.gpus[0].partitions is None


def test_hostile_gpu_labels_and_resources_are_bounded() -> None:
    labels = {
        "nvidia.com/gpu.product": "X" * 63,
        "nvidia.com/gpu.count": "lots",
        "nvidia.com/gpu.memory": "-5",
        "nvidia.com/gpu.replicas": "1e999",
        "nvidia.com/gpu.compute.major": "nine",
        "nvidia.com/mig.strategy": "mixed",
        **{f"nvidia.com/mig-{i}g.{i}gb.count": "3" for i in range(1, 60)},
        "nvidia.com/mig-1g.5gb.memory": "NaN",
    }
    capacity = {"cpu": "4", "nvidia.com/gpu": "1.5", "nvidia.com/mig-1g.5gb": "Infinity"}
    hw = node_hardware(_node(labels, capacity=capacity))
    (gpu,) = hw.profile.gpus
    assert gpu.count == 1 and gpu.memory_mib is None and gpu.compute_capability is None
    assert len(gpu.partitions or []) == 32
    assert any("read the first 32" in n for n in hw.notes)
    assert any("nvidia.com/gpu: not a whole count" in n for n in hw.notes)


def test_gfd_only_node_decisions_name_sources_and_slice() -> None:
    """The thresholds document says which source gave which field, and names the slice."""
    record = node_record(fixture("gfd-a100-80gb-mig-mixed"))
    plan = make_plan(
        name="demo",
        namespace="ns",
        generation=1,
        raw_spec={
            "model": {"preset": "llama-3.1-8b", "weightBits": 4.5},
            "context": {"constraints": {"gpuResource": "nvidia.com/mig-3g.40gb"}},
        },
        nodes={record.name: record},
        compute=engine.compute,
        resolve=engine.resolve_model,
    )
    assert plan.invalid is None and plan.document is not None
    (entry,) = plan.document.classes.values()
    lines = "\n".join(entry.decisions)
    assert "hardware.source: gfd+nfd+capacity" in lines
    assert "hardware.gpus[0].product: gfd (nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB)" in lines
    assert "hardware.cpu.isa: nfd" in lines
    assert "device.partition = MIG 3g.40gb" in lines
    assert entry.feasible and entry.thresholds.min_tokens_per_second
