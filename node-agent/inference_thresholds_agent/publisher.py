"""Publishing a profile onto the agent's own Node: labels + annotations, only on change.

The agent owns exactly the label keys listed in its ``hw.inference.dev/owned-labels``
annotation (NFD keeps the same record): keys it published before and no longer
produces are removed, every other label -- ours by prefix but not in the list, or
anyone else's -- is left alone. The patch is a JSON merge patch of just the keys
that differ, so an unchanged profile costs one GET and zero writes per interval.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from inference_thresholds.api import BandwidthSource, HardwareProfile
from inference_thresholds.api.node_contract import (
    OWNED_LABELS_ANNOTATION,
    PROFILE_ANNOTATION,
    cpu_cores,
)

from .labels import ALL_LABELS, LabelFilter, profile_labels


class NodeApi(Protocol):
    """The two calls the agent makes; Node objects as plain JSON dicts."""

    def get_node(self, name: str) -> dict[str, Any]: ...
    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...


@dataclass
class PublishResult:
    written: bool
    patch: dict[str, Any]
    resource_version: str | None
    owned_labels: int


def profile_json(profile: HardwareProfile) -> str:
    """Canonical JSON (sorted keys, compact) so equal profiles compare equal as text."""
    return json.dumps(profile.wire(), sort_keys=True, separators=(",", ":"))


def desired_metadata(
    profile: HardwareProfile, allowed: LabelFilter = ALL_LABELS
) -> tuple[dict[str, str], dict[str, str]]:
    labels = profile_labels(profile, allowed)
    annotations = {
        PROFILE_ANNOTATION: profile_json(profile),
        OWNED_LABELS_ANNOTATION: ",".join(sorted(labels)),
    }
    return labels, annotations


def owned_labels(node: dict[str, Any]) -> set[str]:
    annotations = node.get("metadata", {}).get("annotations") or {}
    text = annotations.get(OWNED_LABELS_ANNOTATION) or ""
    return {key for key in text.split(",") if key}


def published_profile(node: dict[str, Any]) -> HardwareProfile | None:
    """The profile the agent last wrote onto this node, if it is readable."""
    annotations = node.get("metadata", {}).get("annotations") or {}
    text = annotations.get(PROFILE_ANNOTATION)
    if not text:
        return None
    try:
        return HardwareProfile.model_validate(json.loads(text))
    except ValueError:
        return None  # written by an incompatible version: overwrite it


def metadata_patch(
    node: dict[str, Any], profile: HardwareProfile, allowed: LabelFilter = ALL_LABELS
) -> dict[str, Any]:
    """The merge patch taking ``node`` to the desired state; {} when nothing differs.

    Labels the filter now excludes were owned before, so they are removed like any
    label the profile no longer produces.
    """
    metadata = node.get("metadata", {})
    current_labels: dict[str, str] = metadata.get("labels") or {}
    current_annotations: dict[str, str] = metadata.get("annotations") or {}
    labels, annotations = desired_metadata(profile, allowed)

    label_patch: dict[str, str | None] = {
        key: value for key, value in labels.items() if current_labels.get(key) != value
    }
    for stale in sorted(owned_labels(node) - labels.keys()):
        if stale in current_labels:
            label_patch[stale] = None  # merge patch: null deletes the key
    annotation_patch = {
        key: value for key, value in annotations.items() if current_annotations.get(key) != value
    }
    patch_metadata: dict[str, Any] = {}
    if label_patch:
        patch_metadata["labels"] = label_patch
    if annotation_patch:
        patch_metadata["annotations"] = annotation_patch
    return {"metadata": patch_metadata} if patch_metadata else {}


def publish(
    api: NodeApi,
    node: dict[str, Any],
    profile: HardwareProfile,
    allowed: LabelFilter = ALL_LABELS,
) -> PublishResult:
    """Patch ``node`` (as just read) towards ``profile``; no request when already there."""
    name = node["metadata"]["name"]
    patch = metadata_patch(node, profile, allowed)
    owned = len(profile_labels(profile, allowed))
    if not patch:
        return PublishResult(False, {}, node["metadata"].get("resourceVersion"), owned)
    updated = api.patch_node(name, patch)
    version = updated.get("metadata", {}).get("resourceVersion")
    return PublishResult(True, patch, version, owned)


def node_adjusted(profile: HardwareProfile, node: dict[str, Any]) -> HardwareProfile:
    """Node-scope usable cores: what the kubelet lets pods use (allocatable CPU)."""
    allocatable = cpu_cores((node.get("status", {}).get("allocatable") or {}).get("cpu"))
    cores = profile.cpu.usable_cores
    if allocatable is None or allocatable <= 0 or (cores is not None and cores <= allocatable):
        return profile
    cpu = profile.cpu.model_copy(update={"usable_cores": round(allocatable, 2)})
    return profile.model_copy(update={"cpu": cpu})


def with_previous_gpus(profile: HardwareProfile, node: dict[str, Any]) -> HardwareProfile:
    """While NVML is not ready, keep the GPUs last published instead of dropping them.

    Dropping and re-adding GPU labels on every driver restart is the churn users
    complain about (NFD #2408); the labels change only when detection succeeds.
    """
    previous = published_profile(node)
    if previous is None or not previous.gpus or profile.gpus:
        return profile
    nvidia = [gpu for gpu in previous.gpus if gpu.vendor == "nvidia"]
    return profile.model_copy(update={"gpus": nvidia + profile.gpus})


# A re-measurement must beat the published figure by this much to replace it: the probe's
# best round varies by a few percent on an idle node, but a first pass while the node was
# starting pods can read a third low. Only a starved first read is corrected (once); the
# ordinary spread never relabels the node and moves it between hardware classes.
BANDWIDTH_REPUBLISH_RATIO = 1.5


def with_previous_bandwidth(profile: HardwareProfile, node: dict[str, Any]) -> HardwareProfile:
    """Keep the bandwidth measured earlier on this node unless this pass clearly beat it.

    A read probe can only under-read: anything else using memory or the probe's cores
    lowers its best round, nothing raises it past what the memory delivers. So a lower
    figure on the same hardware is contention, not a slower node, and republishing it
    would relabel the node, move it to another hardware class and rewrite thresholds on
    every agent restart. Different hardware (CPU, memory size, probe threads) or a
    figure 1.5x higher (the published one was starved) is published as measured.
    """
    memory = profile.memory
    previous = published_profile(node)
    if (
        previous is None
        or memory.bandwidth_source is not BandwidthSource.MEASURED
        or previous.memory.bandwidth_source is not BandwidthSource.MEASURED
        or (previous.cpu.model, previous.memory.total_mib, previous.memory.bandwidth_threads)
        != (profile.cpu.model, memory.total_mib, memory.bandwidth_threads)
    ):
        return profile
    old, new = previous.memory, memory
    if (new.bandwidth_gbps or 0) > (old.bandwidth_gbps or 0) * BANDWIDTH_REPUBLISH_RATIO:
        return profile
    kept = memory.model_copy(
        update={
            "bandwidth_gbps": old.bandwidth_gbps,
            "per_core_bandwidth_gbps": old.per_core_bandwidth_gbps,
            "bandwidth_rule": old.bandwidth_rule,
        }
    )
    return profile.model_copy(update={"memory": kept})


class KubernetesNodeApi:
    """NodeApi over the official client; raw JSON in and out (no model objects)."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client

        # Any: the raw-response calls below return urllib3 responses, not V1Node.
        self._core: Any = client.CoreV1Api(api_client)

    @classmethod
    def from_config(cls, kubeconfig: str | None = None) -> KubernetesNodeApi:
        from kubernetes import client, config

        loader: Any = config
        if kubeconfig:
            loader.load_kube_config(config_file=kubeconfig)
        else:
            try:
                loader.load_incluster_config()
            except config.ConfigException:
                loader.load_kube_config()
        api = client.ApiClient()
        # The field manager of the labels it writes (managedFields), not "OpenAPI-Generator".
        api.user_agent = "inference-thresholds-node-agent"
        return cls(api)

    def get_node(self, name: str) -> dict[str, Any]:
        response = self._core.read_node(name, _preload_content=False, _request_timeout=30)
        node: dict[str, Any] = json.loads(response.data)
        return node

    def list_nodes(self) -> list[dict[str, Any]]:
        return self._paged(self._core.list_node)

    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return self._paged(self._core.list_namespaced_pod, namespace, label_selector=label_selector)

    @staticmethod
    def _paged(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = None
        while True:
            more: dict[str, str] = {"_continue": token} if token else {}
            response = call(
                *args, limit=500, _preload_content=False, _request_timeout=30, **kwargs, **more
            )
            page: dict[str, Any] = json.loads(response.data)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        response = self._core.patch_node(
            name,
            patch,
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=30,
        )
        node: dict[str, Any] = json.loads(response.data)
        return node
