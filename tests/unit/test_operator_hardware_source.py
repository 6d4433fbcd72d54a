"""Node object -> hardware profile: agent annotation, GFD/NFD labels, node capacity."""

from __future__ import annotations

import json
from typing import Any

from inference_thresholds.api.node_contract import PROFILE_ANNOTATION
from inference_thresholds.controller.classes import class_key, class_name, summary
from inference_thresholds.controller.hardware_source import node_hardware

GFD = {
    "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    "nvidia.com/gpu.count": "8",
    "nvidia.com/gpu.memory": "81559",
    "nvidia.com/gpu.compute.major": "9",
    "nvidia.com/gpu.compute.minor": "0",
}


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


def test_agent_annotation_wins() -> None:
    profile = {"cpu": {"model": "AMD EPYC 9654", "physicalCores": 96}, "memory": {"totalMiB": 1}}
    hw = node_hardware(_node(GFD, {PROFILE_ANNOTATION: json.dumps(profile)}))
    assert hw.source == "agent" and hw.profile.source == "agent"
    assert hw.profile.cpu.model == "AMD EPYC 9654" and not hw.profile.gpus


def test_invalid_annotation_falls_back_to_gfd_and_says_so() -> None:
    hw = node_hardware(_node(GFD, {PROFILE_ANNOTATION: '{"cpu": {"physicalCores": -3}}'}))
    assert hw.source == "gfd"
    assert any(PROFILE_ANNOTATION in note for note in hw.notes)
    gpu = hw.profile.gpus[0]
    assert (gpu.product, gpu.count, gpu.memory_mib, gpu.compute_capability) == (
        "NVIDIA H100 80GB HBM3",
        8,
        81559,
        "9.0",
    )


def test_capacity_only_node() -> None:
    hw = node_hardware(_node(capacity={"cpu": "3500m", "memory": "8Gi", "nvidia.com/gpu": "2"}))
    assert hw.source == "capacity"
    assert hw.profile.cpu.usable_cores == 3.5 and hw.profile.cpu.architecture == "aarch64"
    assert hw.profile.memory.total_mib == 8192
    assert any("GPU model unknown" in n for n in hw.notes)


def test_nfd_labels_add_isa_and_vendor() -> None:
    labels = {
        "feature.node.kubernetes.io/cpu-cpuid.AVX512VNNI": "true",
        "feature.node.kubernetes.io/cpu-cpuid.AVX2": "true",
        "feature.node.kubernetes.io/cpu-model.vendor_id": "Intel",
    }
    hw = node_hardware(_node(labels))
    assert hw.source == "nfd"
    assert hw.profile.cpu.isa == ["avx2", "avx512_vnni"] and hw.profile.cpu.vendor == "intel"


def test_class_names_are_stable_and_distinguish_hardware() -> None:
    a = node_hardware(_node(GFD)).profile
    b = node_hardware({**_node(GFD), "metadata": {"name": "other", "labels": GFD}}).profile
    c = node_hardware(_node({**GFD, "nvidia.com/gpu.count": "4"})).profile
    assert class_key(a) == class_key(b) and class_name(a) == class_name(b)
    assert class_name(a).startswith("gpu-nvidia-h100-80gb-hbm3-x8-")
    assert class_name(c) != class_name(a)
    assert "8x NVIDIA H100 80GB HBM3" in summary(a)
    assert len(class_name(a)) <= 63
