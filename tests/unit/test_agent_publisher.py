"""Merge-patch computation against Node JSON: owned keys, stale removal, no-op passes.

The real apiserver runs the same scenarios in tests/cluster/test_agent_publish.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent_fakes import MemoryNodes, node

from inference_thresholds.api import BandwidthSource, DeviceInfo, HardwareProfile
from inference_thresholds.api.node_contract import (
    LABEL_PREFIX,
    OWNED_LABELS_ANNOTATION,
    PROFILE_ANNOTATION,
    cpu_cores,
)
from inference_thresholds_agent.profile import detect_profile
from inference_thresholds_agent.publisher import (
    metadata_patch,
    node_adjusted,
    publish,
    published_profile,
    with_previous_bandwidth,
    with_previous_gpus,
)

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def test_first_publish_then_no_writes() -> None:
    profile = detect_profile(HOSTS / "dgx-a100-80gb")
    api = MemoryNodes(node())
    first = publish(api, api.get_node("node-a"), profile)
    assert first.written and first.resource_version == "101"
    labels = api.node["metadata"]["labels"]
    assert labels[LABEL_PREFIX + "gpu.count"] == "8"
    assert labels["kubernetes.io/hostname"] == "node-a"
    annotations = api.node["metadata"]["annotations"]
    assert published_profile(api.node) == profile
    owned = annotations[OWNED_LABELS_ANNOTATION].split(",")
    assert owned == sorted(k for k in labels if k.startswith(LABEL_PREFIX))
    for _ in range(3):
        again = publish(api, api.get_node("node-a"), profile)
        assert not again.written and again.resource_version == "101"
    assert len(api.patches) == 1


def test_stale_owned_labels_are_removed_and_foreign_ones_kept() -> None:
    gpu_profile = detect_profile(HOSTS / "dgx-a100-80gb")
    cpu_profile = gpu_profile.model_copy(update={"gpus": []})
    api = MemoryNodes(node({LABEL_PREFIX + "user.pinned": "yes", "team": "ml"}))
    publish(api, api.get_node("node-a"), gpu_profile)
    publish(api, api.get_node("node-a"), cpu_profile)
    labels = api.node["metadata"]["labels"]
    assert not any(k.startswith(LABEL_PREFIX + "gpu.") for k in labels)
    assert labels[LABEL_PREFIX + "user.pinned"] == "yes"  # our prefix, but never owned
    assert labels["team"] == "ml"
    removal = api.patches[1]["metadata"]["labels"]
    assert removal[LABEL_PREFIX + "gpu.count"] is None
    assert LABEL_PREFIX + "user.pinned" not in removal


def test_patch_touches_only_what_differs() -> None:
    profile = detect_profile(HOSTS / "arm-graviton3-cgroup-v2")
    api = MemoryNodes(node())
    publish(api, api.get_node("node-a"), profile)
    changed = profile.model_copy(
        update={"memory": profile.memory.model_copy(update={"total_mib": 130000})}
    )
    patch = metadata_patch(api.get_node("node-a"), changed)
    assert patch["metadata"]["labels"] == {LABEL_PREFIX + "memory.total-mib": "130000"}
    assert set(patch["metadata"]["annotations"]) == {PROFILE_ANNOTATION}


def test_profile_annotation_is_canonical_json() -> None:
    profile = detect_profile(HOSTS / "hgx-h100-mig")
    api = MemoryNodes(node())
    publish(api, api.get_node("node-a"), profile)
    text = api.node["metadata"]["annotations"][PROFILE_ANNOTATION]
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert HardwareProfile.model_validate(json.loads(text)).gpus[0].mig_enabled is True


def test_unreadable_previous_profile_is_overwritten() -> None:
    broken = node()
    broken["metadata"]["annotations"] = {PROFILE_ANNOTATION: "{not json"}
    assert published_profile(broken) is None


def test_node_scope_usable_cores_capped_by_allocatable() -> None:
    assert cpu_cores("3920m") == 3.92
    assert cpu_cores("4") == 4.0
    assert cpu_cores("x") is None
    profile = detect_profile(HOSTS / "dgx-a100-80gb")  # 256 logical CPUs
    capped = node_adjusted(profile, node())  # allocatable 250
    assert capped.cpu.usable_cores == 250.0
    unlimited = node()
    del unlimited["status"]
    assert node_adjusted(profile, unlimited).cpu.usable_cores == 256.0


def test_pending_nvml_keeps_previously_published_gpus() -> None:
    with_gpus = detect_profile(HOSTS / "dgx-a100-80gb")
    api = MemoryNodes(node())
    publish(api, api.get_node("node-a"), with_gpus)
    without = with_gpus.model_copy(update={"gpus": []})
    kept = with_previous_gpus(without, api.get_node("node-a"))
    assert kept.gpus == with_gpus.gpus
    amd = DeviceInfo(vendor="amd", product="AMD Instinct MI300X", count=1)
    mixed = with_previous_gpus(without.model_copy(update={"gpus": [amd]}), api.get_node("node-a"))
    assert mixed.gpus == [amd]  # detection found GPUs itself: nothing carried over


def _measured(
    profile: HardwareProfile, gbps: float, per_core: float, threads: int = 2
) -> HardwareProfile:
    memory = profile.memory.model_copy(
        update={
            "bandwidth_gbps": gbps,
            "per_core_bandwidth_gbps": per_core,
            "bandwidth_threads": threads,
            "bandwidth_source": BandwidthSource.MEASURED,
            "bandwidth_rule": f"measured: {gbps} GB/s",
        }
    )
    return profile.model_copy(update={"memory": memory})


def test_a_lower_remeasured_bandwidth_does_not_relabel_the_node() -> None:
    """An agent restart re-probes; a busier moment reads less, and must not churn."""
    base = detect_profile(HOSTS / "x86-epyc-vm-cgroup-v1")
    api = MemoryNodes(node())
    publish(api, api.get_node("node-a"), _measured(base, 21.0, 15.0))
    label = LABEL_PREFIX + "memory.bandwidth-gbps"
    assert api.node["metadata"]["labels"][label] == "21"

    for busier in (_measured(base, 17.2, 12.0), _measured(base, 28.0, 19.0)):  # < 1.5x
        kept = with_previous_bandwidth(busier, api.get_node("node-a"))
        assert not publish(api, api.get_node("node-a"), kept).written
    assert len(api.patches) == 1

    faster = with_previous_bandwidth(_measured(base, 33.0, 17.0), api.get_node("node-a"))
    assert faster.memory.bandwidth_gbps == 33.0  # the first read was starved
    assert publish(api, api.get_node("node-a"), faster).written
    assert api.node["metadata"]["labels"][label] == "33"

    # Other probe threads (a new CPU limit, another machine) measure something else.
    other = with_previous_bandwidth(_measured(base, 14.0, 14.0, threads=1), api.get_node("node-a"))
    assert other.memory.bandwidth_gbps == 14.0
    spec = base.memory.model_copy(update={"bandwidth_source": BandwidthSource.SPEC})
    table = base.model_copy(update={"memory": spec})
    assert with_previous_bandwidth(table, api.get_node("node-a")) == table
