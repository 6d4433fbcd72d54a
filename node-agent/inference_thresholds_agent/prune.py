"""``node-agent prune``: remove what the agent published from Nodes (uninstall).

As NFD's prune job: after ``helm uninstall`` the labels and the profile annotation would
otherwise stay on every Node. Only what the agent owns goes: the labels listed in its
``owned-labels`` annotation and the annotations in ``AGENT_ANNOTATIONS``; other labels
under the prefix (set by hand) and everyone else's stay. One merge patch per Node,
none for a Node that carries nothing of ours, so running it twice writes nothing.

A terminating agent could still write after the prune, so ``wait_for_agents`` first
waits until the DaemonSet's pods are gone (bounded by a deadline).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from inference_thresholds.api.node_contract import AGENT_ANNOTATIONS

from .publisher import owned_labels

log = logging.getLogger("inference_thresholds_agent")


class PruneApi(Protocol):
    def list_nodes(self) -> list[dict[str, Any]]: ...
    def list_pods(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...
    def get_node(self, name: str) -> dict[str, Any]: ...
    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]: ...


def prune_patch(node: dict[str, Any]) -> dict[str, Any]:
    """The merge patch removing the agent's labels and annotations; {} when none is left."""
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    gone_labels = {key: None for key in sorted(owned_labels(node)) if key in labels}
    gone_annotations = {key: None for key in AGENT_ANNOTATIONS if key in annotations}
    patch: dict[str, Any] = {}
    if gone_labels:
        patch["labels"] = gone_labels
    if gone_annotations:
        patch["annotations"] = gone_annotations
    return {"metadata": patch} if patch else {}


@dataclass
class PruneReport:
    pruned: dict[str, int] = field(default_factory=dict)  # node -> keys removed
    clean: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # node -> error

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        keys = sum(self.pruned.values())
        text = (
            f"pruned {keys} key(s) from {len(self.pruned)} node(s); {len(self.clean)} already clean"
        )
        if self.failed:
            text += "; failed: " + "; ".join(f"{n}: {e}" for n, e in sorted(self.failed.items()))
        return text


def prune_nodes(api: PruneApi, nodes: list[dict[str, Any]]) -> PruneReport:
    """Patch each node that carries something of ours; errors are collected, not raised."""
    report = PruneReport()
    for node in nodes:
        name = node["metadata"]["name"]
        patch = prune_patch(node)
        if not patch:
            report.clean.append(name)
            continue
        try:
            api.patch_node(name, patch)
        except Exception as exc:  # one Node's failure must not stop the others
            report.failed[name] = str(exc)[:300]
            continue
        removed = sum(len(v) for v in patch["metadata"].values())
        report.pruned[name] = removed
        log.info("node %s: removed %d label(s)/annotation(s)", name, removed)
    return report


def wait_for_agents(
    api: PruneApi,
    namespace: str,
    selector: str,
    timeout_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Poll until no pod matches ``selector`` in ``namespace``; False at the deadline."""
    deadline = clock() + timeout_s
    while True:
        left = len(api.list_pods(namespace, selector))
        if left == 0:
            return True
        if clock() >= deadline:
            return False
        log.info("waiting for %d agent pod(s) in %s (%s) to stop", left, namespace, selector)
        sleep(min(2.0, max(0.0, deadline - clock())))
