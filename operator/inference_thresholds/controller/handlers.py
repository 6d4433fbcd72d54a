"""kopf wiring: startup, the node index, watchers, and one reconcile daemon per CR.

How node changes reach CRs: Nodes are held in ``Runtime.nodes``, listed once at startup
(before kopf starts any watch or handler, so a restarted operator never reconciles
against a half-listed cluster) and kept current by node events; nothing is written onto
Nodes. (A ``kopf.index`` gave the same guarantee, but kopf's per-object readiness
toggles made its pre-indexing quadratic: 24 s for 2,000 nodes.) Each CR's daemon records
what it selected (node -> hardware class). A node event that changes a node's labels or
hardware compares it against every CR's selector and recorded selection and wakes only
the CRs it affects; each daemon waits on its own ``asyncio.Event``, debounces, and
reconciles, so a burst of node changes costs one reconcile per affected CR and no CR
waits on another. Event handlers are coroutines: they run on the loop that owns the
``asyncio.Event`` objects they set (a thread may not set them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server
from pydantic import ValidationError

from .. import engine
from ..api.adaptation import AdaptationStatus
from ..api.crd import GROUP, KIND, PLURAL, READY, VERSION, InferenceThresholdsStatus
from .adaptation import AdaptationCollector, adapt_plan, with_status
from .configmap import (
    CONTENT_HASH_ANNOTATION,
    DATA_HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    Owner,
    data_hash,
    desired_configmap,
    owner_label_value,
    sync_configmap,
)
from .events import post
from .kube import Kube, make_api_client, make_configuration
from .metrics import OperatorMetrics
from .node_index import NodeRecord, Selection, affected_by_node, node_record
from .policy_source import PolicySource
from .reconcile import (
    DecisionEvent,
    SyncOutcome,
    decision_events,
    make_plan,
    new_status,
)
from .settings import OperatorConfig, apply_kopf_settings, current

log = logging.getLogger(__name__)

CrKey = tuple[str, str]  # (namespace, name)
# Reconciles running at once. Each holds its plan, document and status until its writes
# are done; unbounded, a start with 500 CRs held all 500 (peak RSS 413 MiB) while the
# thread pool worked through them. More than the pool's threads gains nothing.
MAX_CONCURRENT_RECONCILES = 8


@dataclass
class Runtime:
    """Process-wide operator state, shared by all handlers through kopf's memo."""

    config: OperatorConfig
    kube: Kube
    policy: PolicySource
    metrics: OperatorMetrics
    triggers: dict[CrKey, asyncio.Event] = field(default_factory=dict)
    selections: dict[CrKey, Selection] = field(default_factory=dict)
    # Last status we wrote per (namespace, name, uid): the watch may not have delivered
    # it to the daemon's body yet when the next reconcile starts.
    written: dict[tuple[str, str, str], InferenceThresholdsStatus] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # CRs whose reconcile is running: their recorded selection may be about to change.
    in_flight: set[CrKey] = field(default_factory=set)
    # Every node's labels and hardware, by name (see the module docstring).
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    # Per CR: (uid, content hash) of the ConfigMap its reconcile is writing or wrote last;
    # set before the write, since the watch may deliver the echo before the write returns.
    configmap_content: dict[CrKey, tuple[str, str]] = field(default_factory=dict)
    # Learned adaptation state per CR: the adaptation daemon advances it, the reconciler
    # rebases it, applies it and writes it to status (the only status writer).
    adaptation: dict[CrKey, AdaptationStatus] = field(default_factory=dict)
    closers: list[Any] = field(default_factory=list)
    slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
    )

    def trigger(self, key: CrKey) -> asyncio.Event:
        return self.triggers.setdefault(key, asyncio.Event())

    def kick(self, key: CrKey) -> None:
        event = self.triggers.get(key)
        if event is not None:
            event.set()

    def kick_all(self) -> None:
        for event in self.triggers.values():
            event.set()

    def forget(self, key: CrKey, trigger: asyncio.Event) -> None:
        # A CR re-created under the same name may already run a new daemon: keep its state.
        if self.triggers.get(key) is not trigger:
            return
        del self.triggers[key]
        self.selections.pop(key, None)
        self.adaptation.pop(key, None)
        self.configmap_content.pop(key, None)
        for k in [k for k in self.written if k[:2] == key]:
            del self.written[k]
        self.metrics.state.forget(*key)


def _runtime(memo: Any) -> Runtime:
    rt: Runtime = memo["runtime"]
    return rt


# --- lifecycle --------------------------------------------------------------------------


async def _watch_policy(rt: Runtime) -> None:
    """Poll the policy file; a change re-reconciles every CR."""
    while True:
        await asyncio.sleep(rt.config.policy_poll_seconds)
        before = rt.policy.last_error
        changed = await asyncio.to_thread(rt.policy.refresh)
        if changed:
            rt.metrics.policy_reloads.labels("ok").inc()
            rt.kick_all()
        elif rt.policy.last_error and rt.policy.last_error != before:
            rt.metrics.policy_reloads.labels("failed").inc()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    apply_kopf_settings(settings)
    # Only our ConfigMaps are watched (server-side filter): drift detection stays cheap.
    settings.watching.label_selectors["v1", "configmaps"] = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    config = current()
    policy = PolicySource(config.policy_path)
    api_client = make_api_client(config.kubeconfig)
    rt = Runtime(config=config, kube=Kube(api_client), policy=policy, metrics=OperatorMetrics())
    rt.closers.append(api_client.close)
    rt.metrics.registry.register(AdaptationCollector(lambda: rt.adaptation))
    if config.metrics_port is not None:
        server, _thread = start_http_server(
            config.metrics_port, addr=config.metrics_host, registry=rt.metrics.registry
        )
        rt.closers.append(server.shutdown)
        log.info("metrics on %s:%s/metrics", config.metrics_host, config.metrics_port)
    if config.policy_path:
        rt.tasks.append(asyncio.create_task(_watch_policy(rt)))
    began = time.monotonic()
    rt.nodes = await asyncio.to_thread(_list_nodes, rt.kube)
    log.info("listed %d nodes in %.1f s", len(rt.nodes), time.monotonic() - began)
    memo["runtime"] = rt
    log.info(
        "inference-thresholds operator: namespaces=%s policy=%s",
        ",".join(config.namespaces) or "(all)",
        config.policy_path or "(built-in)",
    )


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's watches use the same credentials as our writes (--kubeconfig honoured)."""
    cfg = make_configuration(current().kubeconfig)
    header = cfg.get_api_key_with_prefix("BearerToken") or cfg.get_api_key_with_prefix(
        "authorization"
    )
    scheme, token = [*header.split(" ", 1), ""][:2] if header else (None, None)
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        username=cfg.username or None,
        password=cfg.password or None,
        scheme=scheme or None,
        token=token or None,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
        trust_env=settings.networking.trust_env,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    rt = memo.get("runtime")
    if rt is None:
        return
    for task in rt.tasks:
        task.cancel()
    for close in rt.closers:
        with contextlib.suppress(Exception):
            close()


@kopf.on.probe(id="policy")
def probe_policy(memo: kopf.Memo, **_: Any) -> dict[str, Any]:
    rt = memo.get("runtime")
    return rt.policy.describe() if rt is not None else {}


# --- watchers -----------------------------------------------------------------------------


def _list_nodes(kube: Kube) -> dict[str, NodeRecord]:
    return {rec.name: rec for rec in map(node_record, kube.list_nodes())}


@kopf.on.event("nodes")
async def node_changed(name: str, type: str, body: kopf.Body, memo: Any, **_: Any) -> None:
    rt = memo.get("runtime")
    if rt is None:
        return
    record = None if type == "DELETED" else node_record(body)
    if record is not None and rt.nodes.get(name) == record:
        return  # same labels and hardware (a heartbeat, someone's annotation): nothing to do
    if record is None:
        rt.nodes.pop(name, None)
    else:
        rt.nodes[name] = record
    affected = affected_by_node(rt.selections, name, record)
    # A CR mid-reconcile (or not reconciled yet) may have read the nodes before this
    # change under a selector we have not recorded yet: give it one more pass.
    affected |= rt.in_flight | {k for k in rt.triggers if k not in rt.selections}
    for key in affected:
        rt.kick(key)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def resource_changed(
    namespace: str | None, name: str, meta: kopf.Meta, status: kopf.Status, memo: Any, **_: Any
) -> None:
    # Our own status writes come back as events too; only a new generation matters.
    if meta.get("generation") != status.get("observedGeneration"):
        rt = memo.get("runtime")
        if rt is not None:
            rt.kick((namespace or "", name))


def _as_written(rt: Runtime, key: CrKey, uid: str, body: Mapping[str, Any]) -> bool:
    """The ConfigMap is exactly what this CR's last reconcile wrote (our own write's echo)."""
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return (
        rt.configmap_content.get(key) == (uid, annotations.get(CONTENT_HASH_ANNOTATION))
        and annotations.get(DATA_HASH_ANNOTATION) == data_hash(body.get("data") or {})
        and not body.get("binaryData")
        and labels.get(MANAGED_BY_LABEL) == MANAGED_BY
        and labels.get(OWNER_LABEL) == owner_label_value(key[1])
    )


@kopf.on.event("v1", "configmaps", labels={MANAGED_BY_LABEL: MANAGED_BY})
async def configmap_changed(
    type: str, body: kopf.Body, namespace: str | None, memo: Any, **_: Any
) -> None:
    """Someone changed or deleted a generated ConfigMap: let its owner check.

    The echo of our own write is skipped: checking it would cost every write a second
    reconcile (a GET and a full plan) for nothing.
    """
    rt = memo.get("runtime")
    if rt is None:
        return
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("kind") == KIND:
            key = (namespace or "", ref.get("name", ""))
            if type != "DELETED" and _as_written(rt, key, ref.get("uid", ""), body):
                continue
            rt.kick(key)


# --- the reconcile daemon -------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _previous_status(rt: Runtime, key: tuple[str, str, str], raw: Mapping[str, Any]) -> Any:
    cached = rt.written.get(key)
    if cached is not None:
        return cached
    try:
        return InferenceThresholdsStatus.model_validate(dict(raw or {}))
    except ValidationError:
        return InferenceThresholdsStatus()  # hand-edited junk: start from scratch


async def _wait(trigger: asyncio.Event, stopped: kopf.DaemonStopped, timeout: float) -> None:
    async def stop() -> None:
        await stopped.wait()

    waiters = {asyncio.ensure_future(trigger.wait()), asyncio.ensure_future(stop())}
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()


async def reconcile_once(
    rt: Runtime, body: kopf.Body, nodes: Mapping[str, NodeRecord], logger: Any
) -> bool:
    """One pass; returns False when something failed and a retry is due."""
    meta = body.get("metadata", {})
    namespace, name, uid = meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", "")
    generation = int(meta.get("generation") or 0)
    key3 = (namespace, name, uid)
    previous = _previous_status(rt, key3, body.get("status") or {})
    raw_status = dict(body.get("status") or {})

    plan = await asyncio.to_thread(
        make_plan,
        name=name,
        namespace=namespace,
        generation=generation,
        raw_spec=dict(body.get("spec") or {}),
        nodes=nodes,
        compute=engine.compute,
        policy=rt.policy.policy,
        resolve=engine.resolve_model,
    )
    # Adapted thresholds replace computed ones before the ConfigMap is built; stored
    # before the next await so the adaptation daemon always advances the rebased state.
    adapted = adapt_plan(plan, rt.adaptation.get((namespace, name)) or previous.adaptation)
    if adapted.state is not None and adapted.enabled:
        rt.adaptation[(namespace, name)] = adapted.state
    elif not adapted.keep_status:
        rt.adaptation.pop((namespace, name), None)
    sync: SyncOutcome | None = None
    if plan.invalid is None and plan.document is not None and plan.spec is not None:
        owner = Owner(name=name, namespace=namespace, uid=uid)
        desired = desired_configmap(
            plan.document,
            name=plan.config_map_name or "",
            env_prefix=plan.spec.config_map.env_prefix,
            owner=owner,
        )
        ref = previous.config_map_ref
        rt.configmap_content[(namespace, name)] = (uid, plan.document.content_hash)
        sync = await asyncio.to_thread(
            sync_configmap,
            rt.kube,
            desired,
            owner,
            previously_written=ref is not None and ref.name == plan.config_map_name,
        )
        if sync.action in ("created", "updated", "repaired"):
            rt.metrics.configmap_writes.labels(sync.action).inc()

    now = _now()
    status = with_status(new_status(plan, previous, sync, now), previous, adapted, generation, now)
    events = decision_events(plan, previous, sync) + adapted.events
    wire = status.wire()
    if wire != raw_status:
        try:
            await asyncio.to_thread(
                rt.kube.patch_status, GROUP, VERSION, PLURAL, namespace, name, wire
            )
        except ApiException as exc:
            if exc.status == 404:
                return True  # deleted meanwhile; the daemon is being stopped
            raise
    rt.written[key3] = status
    rt.selections[(namespace, name)] = plan.selection
    rt.metrics.state.update(namespace, name, status)
    post(body, events)
    for ev in events:
        logger.info("%s: %s", ev.reason, ev.message)
    result = "invalid" if plan.invalid else ("ok" if sync is None or sync.ok else "failed")
    rt.metrics.reconciles.labels(result).inc()
    return sync is None or sync.ok


@kopf.daemon(GROUP, VERSION, PLURAL, id="reconciler", cancellation_timeout=10.0)
async def reconciler(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    stopped: kopf.DaemonStopped,
    memo: Any,
    logger: Any,
    **kwargs: Any,
) -> None:
    """Reconcile this CR whenever it, its nodes, its ConfigMap or the policy change."""
    rt = _runtime(memo)
    key = (namespace or "", name)
    trigger = rt.trigger(key)
    trigger.set()  # first pass right away (also after an operator restart)
    failures = 0
    last_error = ""
    cfg = rt.config
    try:
        while not stopped:
            if failures:
                timeout = min(cfg.retry_seconds * 2 ** (failures - 1), cfg.resync_seconds)
            else:
                timeout = cfg.resync_seconds
            await _wait(trigger, stopped, timeout)
            if stopped:
                break
            await stopped.wait(cfg.debounce_seconds)  # let a burst of changes settle
            if stopped:
                break
            async with rt.slots:
                trigger.clear()  # changes seen while waiting for a slot are in this pass
                started = time.monotonic()
                rt.in_flight.add(key)
                try:
                    ok = await reconcile_once(rt, body, dict(rt.nodes), logger)
                    failures = 0 if ok else failures + 1
                    last_error = ""
                except Exception as exc:  # never let one bad pass kill the daemon
                    failures += 1
                    kind = type(exc).__name__
                    rt.metrics.errors.labels(kind).inc()
                    rt.metrics.reconciles.labels("failed").inc()
                    message = f"{kind}: {exc}"[:900]
                    logger.exception("reconcile failed (attempt %d)", failures)
                    if message != last_error:
                        post(body, [DecisionEvent("Warning", "ReconcileError", message)])
                        last_error = message
                finally:
                    rt.in_flight.discard(key)
                    rt.metrics.duration.observe(time.monotonic() - started)
    finally:
        rt.forget(key, trigger)


from . import adaptation_daemon  # noqa: E402, F401  (registers the adaptation daemon)

__all__ = ["READY", "Runtime", "reconcile_once"]
