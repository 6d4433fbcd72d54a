"""How the operator process runs: node index first, then (with leader election) standby
until this replica holds the Lease, then kopf's handlers; the Lease released on SIGTERM.

    node watch: list every Node ──► [standby: renew attempts every retry period] ──►
    leader: kopf (CR and ConfigMap watches, one reconcile loop per CR) + Lease renewals

A standby keeps its node index current (the watch runs from the start), so a takeover
starts the handlers at once, without listing 10,000 Nodes. It runs no handler at all, so
it cannot write. Leadership lost (not renewed within the renew deadline): writes are
refused at once (``Kube.guard``), kopf stops, and the process exits 1 so that its pod
restarts as a standby. SIGTERM: kopf stops its handlers, the Lease is released, exit 0;
the standby takes over within one retry period.

Without leader election the same path runs without the Lease (standalone, one replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import kopf
from aiohttp import web

from .kube import Kube, make_api_client
from .leader_election import ElectionConfig, LeaderElector, LeaseApi, describe
from .lifecycle import LIST_RETRY_SECONDS, STATE, node_watch
from .lifecycle import health as work_health
from .node_watch import NodeWatch
from .settings import GC_THRESHOLDS, OperatorConfig

log = logging.getLogger(__name__)


def election_config(config: OperatorConfig) -> ElectionConfig | None:
    if not config.leader_elect:
        return None
    if not config.lease_namespace:
        raise ValueError(
            "leader election needs the Lease's namespace: set --lease-namespace or "
            "POD_NAMESPACE (the chart sets it from the pod's namespace)"
        )
    return ElectionConfig(
        namespace=config.lease_namespace,
        name=config.lease_name,
        lease_duration=config.lease_duration_seconds,
        renew_deadline=config.renew_deadline_seconds,
        retry_period=config.retry_period_seconds,
    )


async def _health_server(
    config: OperatorConfig, report: Callable[[], dict[str, Any]]
) -> web.AppRunner | None:
    """/healthz for both roles (kopf's own endpoint exists only while kopf runs)."""
    if config.liveness_port is None:
        return None

    async def healthz(_: web.Request) -> web.Response:
        try:
            return web.json_response(report(), dumps=json.dumps)
        except Exception as exc:  # wedged work (lifecycle.health): the pod restarts
            return web.json_response({"error": str(exc)[:500]}, status=500, dumps=json.dumps)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, config.liveness_host, config.liveness_port).start()
    return runner


def _on_signals(stop: asyncio.Event) -> None:
    """SIGTERM/SIGINT set ``stop`` (kopf stops through its stop flag, so nothing of it is
    left waiting on a flag that never comes)."""
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)


async def serve(config: OperatorConfig, *, kopf_options: dict[str, Any]) -> int:
    """The whole process; returns its exit status."""
    gc.set_threshold(*GC_THRESHOLDS)
    election = election_config(config)
    stop = asyncio.Event()
    _on_signals(stop)

    watch = node_watch(config)
    elector: LeaderElector | None = None
    role = {"role": "starting"}
    if election is not None:
        elector = LeaderElector(
            LeaseApi(Kube(make_api_client(config.kubeconfig)), election.namespace, election.name),
            election,
        )

    memo = kopf.Memo()

    def report() -> dict[str, Any]:
        out: dict[str, Any] = {**role, "nodes": len(watch.index)}
        if elector is not None:
            out["election"] = describe(elector)
        if (state := memo.get(STATE)) is not None:
            out["work"] = work_health(state)  # raises while work is wedged
        return out

    health = await _health_server(config, report) if elector is not None else None
    try:
        if not await _until_stopped(watch.start(LIST_RETRY_SECONDS), stop):
            return 0  # stopped before the nodes could be listed
        if elector is not None:
            role["role"] = "standby"
            log.info("standby: waiting for the lease %s", elector.api.path)
            if not await elector.acquire(stop.wait):
                return 0  # stopped while standing by
        role["role"] = "leader" if elector is not None else "standalone"
        return await _lead(config, memo, watch, elector, stop, kopf_options)
    finally:
        watch.stop()
        if health is not None:
            await health.cleanup()


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Run ``work`` unless ``stop`` is set first; True when it completed."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


async def _lead(
    config: OperatorConfig,
    memo: kopf.Memo,
    watch: NodeWatch,
    elector: LeaderElector | None,
    stop: asyncio.Event,
    kopf_options: dict[str, Any],
) -> int:
    from .handlers import ELECTOR, NODE_WATCH

    memo[NODE_WATCH] = watch
    if elector is not None:
        memo[ELECTOR] = elector
    # Our own tasks exist before kopf starts: kopf cancels only the tasks it spawned.
    waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop.wait())}
    holding = asyncio.ensure_future(elector.hold()) if elector is not None else None
    if holding is not None:
        waiters.add(holding)
    kopf_stop, kopf_ready = asyncio.Event(), asyncio.Event()

    async def take_signals_back() -> None:
        await kopf_ready.wait()  # kopf installed its own signal handlers when it started
        _on_signals(stop)

    signals_back = asyncio.ensure_future(take_signals_back())
    operator = asyncio.ensure_future(
        kopf.operator(
            memo=memo,
            stop_flag=kopf_stop,
            ready_flag=kopf_ready,
            liveness_endpoint=None if elector is not None else config.liveness_endpoint,
            **kopf_options,
        )
    )
    done, _ = await asyncio.wait({operator, *waiters}, return_when=asyncio.FIRST_COMPLETED)
    lost = holding is not None and holding in done
    if lost:
        log.error("leadership lost: stopping the handlers and exiting")
    kopf_stop.set()
    try:
        await operator
    finally:
        for w in (*waiters, signals_back):
            w.cancel()
        if elector is not None and not lost:
            await asyncio.to_thread(elector.release)
    return 1 if lost else 0
