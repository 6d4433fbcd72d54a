"""One reconcile of one CR: plan -> ConfigMap -> status -> Events, dependencies passed in.

The reconcile loop (``reconcile_loop.py``) calls ``reconcile_once`` with the CR's body,
its ``CrState``, a snapshot of the node records and the clients; unit tests call it the
same way with an in-memory API. Writes are skipped when nothing changed, so a restarted
operator reconciles without a single write.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from .. import engine
from ..api.adaptation import AdaptationStatus
from ..api.crd import GROUP, PLURAL, VERSION, InferenceThresholdsStatus
from .configmap import (
    DATA_HASH_ANNOTATION,
    Owner,
    SyncOutcome,
    data_fingerprint,
    delete_replaced,
    desired_configmap,
    sync_configmap,
)
from .decision_events import decision_events
from .events import DecisionEvent, Poster
from .kube import ConfigMapApi, StatusApi
from .metrics import OperatorMetrics
from .node_index import NodeRecord
from .operator_state import CrState
from .plan import ComputeFn, Plan, ResolveFn, make_plan
from .plan_adaptation import PlanAdaptation
from .status import new_status


class ReconcileApi(ConfigMapApi, StatusApi, Protocol):
    """The API calls one reconcile makes."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def previous_status(
    cr: CrState, uid: str, raw: Mapping[str, Any] | None
) -> InferenceThresholdsStatus:
    """What we wrote last, else the status as stored (after a restart); junk is dropped."""
    cached = cr.written_status(uid)
    if cached is not None:
        return cached
    try:
        return InferenceThresholdsStatus.model_validate(dict(raw or {}))
    except ValidationError:
        return InferenceThresholdsStatus()  # hand-edited junk: start from scratch


async def reconcile_once(
    body: Mapping[str, Any],
    cr: CrState,
    *,
    nodes: Mapping[str, NodeRecord],
    kube: ReconcileApi,
    policy: Any,
    metrics: OperatorMetrics,
    post: Poster,
    now: Callable[[], str] = utc_now,
    compute: ComputeFn = engine.compute,
    resolve: ResolveFn = engine.resolve_model,
    rivals: Callable[[str], Sequence[str]] = lambda _: (),
) -> bool:
    """One pass; returns False when something failed and a retry is due.

    ``rivals(configmap)``: the other CRs of the namespace whose spec names that ConfigMap.
    """
    meta = body.get("metadata", {})
    namespace, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
    raw_status = dict(body.get("status") or {})
    previous = previous_status(cr, uid, raw_status)

    plan = await asyncio.to_thread(
        make_plan,
        name=name,
        namespace=namespace,
        generation=int(meta.get("generation") or 0),
        raw_spec=dict(body.get("spec") or {}),
        nodes=nodes,
        compute=compute,
        policy=policy,
        resolve=resolve,
        adaptation=cr.adaptation or previous.adaptation,
    )
    # Before the next await, so the adaptation loop always advances the rebased state.
    cr.adaptation = _learned_state(cr.adaptation, plan.adaptation)
    if plan.adaptation.class_nodes:
        cr.class_nodes = plan.adaptation.class_nodes
    owner = Owner(name, namespace, uid)
    if plan.config_map_name is not None:
        cr.configmap_name = plan.config_map_name
    sync = await _write_configmap(plan, previous, owner, cr, kube)
    cleanup: list[DecisionEvent] = []
    if sync is not None:
        if sync.action in ("created", "updated", "repaired"):
            metrics.configmap_writes.labels(sync.action).inc()
        shared = tuple(sorted(rivals(plan.config_map_name or "")))
        sync = dataclasses.replace(sync, shared_with=shared) if shared else sync
        cleanup = await _delete_renamed(plan, previous, owner, sync, kube)

    status = new_status(plan, previous, sync, now())
    if not await _write_status(kube, namespace, name, status, raw_status):
        return True  # deleted meanwhile; the loop is being stopped
    cr.remember_written(uid, status)
    cr.selection = plan.selection
    metrics.state.update(namespace, name, status)
    post([*decision_events(plan, previous, sync), *cleanup])
    result = "invalid" if plan.invalid else ("ok" if sync is None or sync.ok else "failed")
    metrics.reconciles.labels(result).inc()
    return sync is None or sync.ok


def _learned_state(
    held: AdaptationStatus | None, adaptation: PlanAdaptation
) -> AdaptationStatus | None:
    """The learned state to hold after planning (kept as is for an invalid spec)."""
    if adaptation.state is not None and adaptation.enabled:
        return adaptation.state
    return held if adaptation.keep_status else None


async def _write_configmap(
    plan: Plan,
    previous: InferenceThresholdsStatus,
    owner: Owner,
    cr: CrState,
    kube: ConfigMapApi,
) -> SyncOutcome | None:
    """The ConfigMap the plan describes; None when the plan writes none (invalid spec)."""
    if plan.invalid is not None or plan.document is None or plan.spec is None:
        return None
    if plan.oversized is not None:
        return SyncOutcome("too-large", plan.oversized)
    desired = desired_configmap(
        plan.document,
        name=plan.config_map_name or "",
        env_prefix=plan.spec.config_map.env_prefix,
        owner=owner,
        text=plan.document_text,
    )
    ref = previous.config_map_ref
    cr.configmap_content = (
        owner.uid,
        desired["metadata"]["annotations"][DATA_HASH_ANNOTATION],
        data_fingerprint(desired["data"]),
    )
    return await asyncio.to_thread(
        sync_configmap,
        kube,
        desired,
        owner,
        previously_written=ref is not None and ref.name == plan.config_map_name,
    )


async def _delete_renamed(
    plan: Plan,
    previous: InferenceThresholdsStatus,
    owner: Owner,
    sync: SyncOutcome,
    kube: ConfigMapApi,
) -> list[DecisionEvent]:
    """Once the ConfigMap under a new spec.configMap.name is written, the old one goes."""
    old = previous.config_map_ref
    if not sync.ok or old is None or not old.name or old.name == plan.config_map_name:
        return []
    done = await asyncio.to_thread(delete_replaced, kube, owner.namespace, old.name, owner)
    if done is None:
        return []
    deleted, message = done
    if deleted:
        return [DecisionEvent("Normal", "ConfigMapDeleted", message)]
    return [DecisionEvent("Warning", "ConfigMapDeleteFailed", message)]


async def _write_status(
    kube: StatusApi,
    namespace: str,
    name: str,
    status: InferenceThresholdsStatus,
    stored: Mapping[str, Any],
) -> bool:
    """Write status unless it is already what the CR holds; False when the CR is gone."""
    wire = status.wire()
    if wire == stored:
        return True
    try:
        json.dumps(wire, allow_nan=False)
    except ValueError:  # the apiserver would refuse it (400) on every pass
        raise ValueError("status holds a non-finite number; not written") from None
    try:
        await asyncio.to_thread(kube.patch_status, GROUP, VERSION, PLURAL, namespace, name, wire)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True
