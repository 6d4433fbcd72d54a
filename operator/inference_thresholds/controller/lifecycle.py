"""Operator start and stop: the state every handler shares, credentials, the policy watch.

A start either completes or leaves nothing behind: a step that fails (the apiserver not
answering the node list) releases what earlier steps took (the metrics port, clients,
tasks) before kopf retries it, so a retry binds the port again instead of failing on
"Address already in use". No single object can fail a start (``wakeups.list_nodes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import kopf
from prometheus_client import start_http_server

from . import node_reports
from .kube import Kube, make_api_client, make_configuration
from .metrics import AdaptationCollector, OperatorMetrics
from .operator_state import OperatorState
from .policy_source import PolicySource
from .settings import OperatorConfig
from .wakeups import NodeReport, list_nodes

log = logging.getLogger(__name__)

LIST_RETRY_SECONDS = 5.0


async def start(config: OperatorConfig) -> OperatorState:
    """Clients, metrics server, policy watch, and every node listed before any handler runs."""
    policy = PolicySource(config.policy_path)
    api_client = make_api_client(config.kubeconfig)
    state = OperatorState(
        config=config, kube=Kube(api_client), policy=policy, metrics=OperatorMetrics()
    )
    state.closers.append(api_client.close)
    state.closers.append(lambda: state.adaptation_pool.shutdown(wait=False, cancel_futures=True))
    try:
        state.metrics.registry.register(AdaptationCollector(state.adaptation_states))
        if config.metrics_port is not None:
            _serve_metrics(state, config.metrics_host, config.metrics_port)
        began = time.monotonic()
        state.nodes, reports = await _list_nodes(state)
        log.info("listed %d nodes in %.1f s", len(state.nodes), time.monotonic() - began)
        if reports:
            state.tasks.append(asyncio.create_task(_report_nodes(state, reports)))
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
    server, _thread = start_http_server(port, addr=host, registry=state.metrics.registry)

    def close() -> None:
        server.shutdown()  # ends serve_forever
        server.server_close()  # releases the port

    state.closers.append(close)
    log.info("metrics on %s:%s/metrics", host, port)


async def _list_nodes(state: OperatorState) -> tuple[dict[str, Any], list[NodeReport]]:
    try:
        return await asyncio.to_thread(list_nodes, state.kube, state.node_reports)
    except Exception as exc:  # the API, not a Node: list_nodes never fails on one object
        raise kopf.TemporaryError(
            f"listing Nodes failed ({type(exc).__name__}: {str(exc)[:300]}); retrying",
            delay=LIST_RETRY_SECONDS,
        ) from exc


async def _report_nodes(state: OperatorState, reports: list[NodeReport]) -> None:
    for node, message in reports:
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
