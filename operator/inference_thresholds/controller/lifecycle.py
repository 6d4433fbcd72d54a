"""Operator start and stop: the state every handler shares, credentials, the node watch
(started here unless the caller started it earlier, e.g. a standby replica keeping its
node index warm), the policy watch."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import kopf
from prometheus_client import start_http_server

from .kube import Kube, make_api_client, make_configuration
from .leader_election import LeaderElector, write_guard
from .metrics import AdaptationCollector, OperatorMetrics
from .node_watch import NodeWatch
from .operator_state import OperatorState
from .policy_source import PolicySource
from .settings import OperatorConfig
from .wakeups import node_changed

log = logging.getLogger(__name__)


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
    if nodes is None:
        nodes = node_watch(config)
        await nodes.start()
    watch = nodes
    state = OperatorState(
        config=config,
        kube=Kube(api_client),
        policy=policy,
        metrics=OperatorMetrics(),
        nodes=watch.index,
    )
    if elector is not None:
        state.kube.guard = write_guard(elector)
    watch.listener = lambda change: node_changed(state, change)
    state.closers.append(lambda: setattr(watch, "listener", None))
    if own_watch:
        state.closers.append(watch.stop)
    state.closers.append(api_client.close)
    state.metrics.registry.register(AdaptationCollector(state.adaptation_states))
    if config.metrics_port is not None:
        server, _thread = start_http_server(
            config.metrics_port, addr=config.metrics_host, registry=state.metrics.registry
        )
        state.closers.append(server.shutdown)
        log.info("metrics on %s:%s/metrics", config.metrics_host, config.metrics_port)
    if config.policy_path:
        state.tasks.append(asyncio.create_task(_watch_policy(state)))
    log.info(
        "inference-thresholds operator: namespaces=%s policy=%s",
        ",".join(config.namespaces) or "(all)",
        config.policy_path or "(built-in)",
    )
    return state


def stop(state: OperatorState) -> None:
    for task in state.tasks:
        task.cancel()
    for close in state.closers:
        with contextlib.suppress(Exception):
            close()


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
