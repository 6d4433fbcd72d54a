"""Which CRs a watched change wakes: node, CR and ConfigMap events -> ``CrState.trigger``.

Nodes are held in ``OperatorState.nodes``, listed by the node watch before kopf starts
any watch or handler (so a restarted operator never reconciles against a half-listed
cluster) and kept current by it (``node_watch.py``); nothing is written onto Nodes. (A
``kopf.index`` gave the same guarantee, but kopf's per-object readiness toggles made its
pre-indexing quadratic: 24 s for 2,000 nodes.) A node change that alters a node's labels
or hardware is compared with every CR's selector and wakes only the CRs it affects.
Called on the event loop that owns the triggers (a thread may not set them).
A Node whose values were refused (``NodeHardware.rejected``) is still served from the rest
and reported once (``node_reports.py``): one Node never stops a listing or a wakeup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..api.crd import KIND
from .configmap import (
    DATA_HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    OWNER_UID_ANNOTATION,
    controller_of,
    data_fingerprint,
    owner_label_value,
)
from .node_index import NodeChange, NodeRecord, affected_by_node
from .operator_state import CrKey, CrState, OperatorState


def report_node(state: OperatorState, name: str, record: NodeRecord | None) -> None:
    """Queue a Warning Event for a Node whose values were refused (once per distinct set
    of refusals; ``lifecycle`` posts the queue)."""
    if record is None:
        state.node_reports.forget(name)
        return
    message = state.node_reports.due(name, record.hardware.rejected)
    if message is not None:
        node = {"metadata": {"name": name, "uid": record.uid}}
        state.node_report_queue.put_nowait((node, message))


def node_changed(state: OperatorState, change: NodeChange) -> None:
    """A node's labels or hardware changed (the index holds the new record already)."""
    report_node(state, change.name, change.new)
    affected = affected_by_node(state.selections(), change)
    if change.only_own_labels():
        # GFD's timestamp (every node, every run) or the hostname: CRs whose recorded
        # selectors read them were matched above; no race cover for CRs in flight, since
        # hostnames do not change and nobody selects on a timestamp.
        for key in affected:
            state.kick(key)
        return
    # A CR mid-reconcile (or not reconciled yet) may have read the nodes before this
    # change under a selector we have not recorded yet: give it one more pass.
    affected |= {k for k, cr in state.crs.items() if cr.in_flight or cr.selection is None}
    for key in affected:
        state.kick(key)


def resource_changed(
    state: OperatorState, key: CrKey, meta: Mapping[str, Any], status: Mapping[str, Any]
) -> None:
    """An InferenceThresholds changed: only a new generation matters."""
    # Our own status writes come back as events too.
    if meta.get("generation") != status.get("observedGeneration"):
        state.kick(key)


def configmap_changed(
    state: OperatorState, namespace: str, body: Mapping[str, Any], deleted: bool
) -> None:
    """Someone changed or deleted a generated ConfigMap: let the CRs it concerns check.

    Those are its owner (by ownerReference) and every CR whose spec names it (a CR that
    could not write it, or our own ConfigMap whose ownerReference was removed). The echo
    of our own write is skipped: checking it would cost every write a second reconcile
    (a GET and a full plan) for nothing.
    """
    meta = body.get("metadata") or {}
    keys = {
        (namespace, str(ref.get("name", "")))
        for ref in meta.get("ownerReferences") or []
        if isinstance(ref, Mapping) and ref.get("kind") == KIND
    }
    keys.update(state.claimants(namespace, str(meta.get("name", ""))))
    for key in keys:
        cr = state.crs.get(key)
        if cr is None:
            continue
        if not deleted and _as_written(cr, key, body):
            continue
        cr.trigger.set()


def _as_written(cr: CrState, key: CrKey, body: Mapping[str, Any]) -> bool:
    """The ConfigMap is exactly what this CR's last reconcile wrote (our own write's echo):
    its data is the data we rendered (not merely consistent with its hash annotation,
    which anyone can recompute) and our references and labels are in place. The data is
    compared by fingerprint, not by recomputing its sha256 (about half a millisecond per
    echo of a 50-70 KB ConfigMap)."""
    if cr.configmap_content is None:
        return False
    uid, written, fingerprint = cr.configmap_content
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    ctrl = controller_of(body)
    return (
        fingerprint is not None
        and data_fingerprint(body.get("data") or {}) == fingerprint
        and annotations.get(DATA_HASH_ANNOTATION) == written
        and annotations.get(OWNER_UID_ANNOTATION) == uid
        and ctrl is not None
        and ctrl.get("uid") == uid
        and not body.get("binaryData")
        and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        and labels.get(OWNER_LABEL) == owner_label_value(key[1])
    )
