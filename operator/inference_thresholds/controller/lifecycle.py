"""Operator start and stop: the state every handler shares, credentials, the node watch
(started here unless the caller started it earlier, e.g. a standby replica keeping its
node index warm), the policy watch.

A start either completes or leaves nothing behind: a step that fails (the apiserver not
answering the node list) releases what earlier steps took (the metrics port, clients,
tasks) before kopf retries it, so a retry binds the port again instead of failing on
"Address already in use". No single Node can fail a start: a Node whose values were
refused is served from the rest and reported once (``wakeups.report_node``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf

from . import node_reports
from .kube import Kube, make_api_client, make_configuration
from .leader_election import LeaderElector, write_guard
from .metrics import AdaptationCollector, OperatorMetrics, serve_metrics
from .node_watch import NodeWatch
from .operator_state import OperatorState
from .policy_source import PolicySource
from .settings import OperatorConfig
from .wakeups import node_changed, report_node

log = logging.getLogger(__name__)

LIST_RETRY_SECONDS = 5.0
STATE = "operator_state"  # kopf's memo key for the OperatorState (handlers.py, runner.py)


def node_watch(config: OperatorConfig) -> NodeWatch:
    """The node watch for this configuration (its own API client)."""
    api_client = make_api_client(config.kubeconfig)
    return NodeWatch(Kube(api_client), metadata_only=config.node_metadata_only)


async def start(
    config: OperatorConfig,
    nodes: NodeWatch | None = None,
    elector: LeaderElector | None = None,
) -> OperatorState:
    """Clients, metrics server, policy watch, and every node listed before any handler runs.

    ``nodes``: a node watch already started (its index is current); else one is started
    here (and stopped by ``stop``). ``elector``: writes are refused once its lease may
    have passed to another replica.
    """
    policy = PolicySource(config.policy_path)
    api_client = make_api_client(config.kubeconfig)
    own_watch = nodes is None
    watch = node_watch(config) if nodes is None else nodes
    state = OperatorState(
        config=config,
        kube=Kube(api_client),
        policy=policy,
        metrics=OperatorMetrics(),
        nodes=watch.index,
    )
    if elector is not None:
        state.kube.guard = write_guard(elector)
    state.closers.append(api_client.close)
    state.closers.append(lambda: state.adaptation_pool.shutdown(wait=False, cancel_futures=True))
    try:
        state.metrics.registry.register(AdaptationCollector(state.adaptation_states))
        if config.metrics_port is not None:
            _serve_metrics(state, config.metrics_host, config.metrics_port)
        if own_watch:
            state.closers.append(watch.stop)
            await _start_watch(watch)
        state.tasks.append(asyncio.create_task(_report_nodes(state)))
        for record in list(state.nodes.values()):  # listed before this state existed
            report_node(state, record.name, record)
        watch.listener = lambda change: node_changed(state, change)
        state.closers.append(lambda: setattr(watch, "listener", None))
        if config.policy_path:
            state.tasks.append(asyncio.create_task(_watch_policy(state)))
    except BaseException:
        stop(state)  # a retried start must find the port and everything else free
        raise
    log.info(
        "inference-thresholds operator: namespaces=%s policy=%s",
        ",".join(config.namespaces) or "(all)",
        config.policy_path or "(built-in)",
    )
    return state


def _serve_metrics(state: OperatorState, host: str, port: int) -> None:
    server = serve_metrics(state.metrics, host, port)

    def close() -> None:
        server.shutdown()  # ends serve_forever
        server.server_close()  # releases the port

    state.closers.append(close)
    log.info("metrics on %s:%s/metrics", host, port)


async def _start_watch(watch: NodeWatch) -> None:
    try:
        await watch.start()
    except Exception as exc:  # the API, not a Node: the listing never fails on one object
        raise kopf.TemporaryError(
            f"listing Nodes failed ({type(exc).__name__}: {str(exc)[:300]}); retrying",
            delay=LIST_RETRY_SECONDS,
        ) from exc


async def _report_nodes(state: OperatorState) -> None:
    """Post the Node reports queued by ``wakeups.report_node``, one at a time."""
    while True:
        node, message = await state.node_report_queue.get()
        await asyncio.to_thread(node_reports.post, state.kube, node, message)


def stop(state: OperatorState) -> None:
    for task in state.tasks:
        task.cancel()
    for close in state.closers:
        with contextlib.suppress(Exception):
            close()


def health(state: OperatorState) -> dict[str, Any]:
    """The liveness probe: fails (HTTP 500) while any work is far past its deadline."""
    now = time.monotonic()
    late = state.overdue(now)
    if late:
        what = "; ".join(
            f"{w.what} running for {now - w.started:.0f} s (limit {w.deadline - w.started:.0f} s)"
            for w in late[:5]
        )
        raise kopf.PermanentError(f"wedged: {what}")
    return {"inFlight": len(state.inflight)}


async def _watch_policy(state: OperatorState) -> None:
    """Poll the policy file; a change re-reconciles every CR."""
    while True:
        await asyncio.sleep(state.config.policy_poll_seconds)
        before = state.policy.last_error
        changed = await asyncio.to_thread(state.policy.refresh)
        if changed:
            state.metrics.policy_reloads.labels("ok").inc()
            state.kick_all()
        elif state.policy.last_error and state.policy.last_error != before:
            state.metrics.policy_reloads.labels("failed").inc()


def connection_info(kubeconfig: str | None, trust_env: bool) -> kopf.ConnectionInfo:
    """kopf's watches use the same credentials as our writes (--kubeconfig honoured)."""
    cfg = make_configuration(kubeconfig)
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
        trust_env=trust_env,
    )
