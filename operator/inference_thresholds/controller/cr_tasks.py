"""The per-CR loops (reconcile, adaptation), started and stopped from the CR's watch events.

Why not kopf daemons: kopf puts a finalizer on every object that has a daemon, so a CR
deleted while the operator is not running (after ``helm uninstall``, in a broken
cluster) hangs until someone removes the finalizer by hand. Nothing here needs one:
the ConfigMap and the PrometheusRule are owned (the garbage collector removes them),
and a loop that outlives its CR only finds it gone (404). So the loops are plain
asyncio tasks: started by the first event of a CR (also the initial listing after a
restart), stopped by its DELETED event or a deletionTimestamp, by the adaptation being
switched off, or by the operator's shutdown. With no daemon and no change handler,
kopf also removes the finalizer an older operator version left (``settings.FINALIZER``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from . import adaptation_loop, reconcile_loop, wakeups
from .events import Poster, kopf_poster
from .operator_state import CrKey, CrState, OperatorState
from .stopper import Loop, Stopper, StopReason

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0  # seconds a loop gets to finish its pass before it is cancelled


LoopFn = Callable[[Stopper], Coroutine[Any, Any, None]]


def _start(state: OperatorState, cr: CrState, kind: str, make: LoopFn) -> None:
    running = cr.loops.get(kind)
    if running is not None and not running.task.done():
        return
    stopper = Stopper()
    task = asyncio.create_task(make(stopper), name=f"{kind}:{cr.key[0]}/{cr.key[1]}")
    cr.loops[kind] = Loop(task, stopper)
    state.loop_tasks.add(task)
    task.add_done_callback(state.loop_tasks.discard)


def _stop(cr: CrState, kind: str, reason: StopReason) -> None:
    running = cr.loops.pop(kind, None)
    if running is not None:
        running.stopper.stop(reason)


def resource_event(
    state: OperatorState,
    key: CrKey,
    event_type: str | None,
    body: Mapping[str, Any],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """A watch event of one InferenceThresholds: keep its loops running or stop them."""
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid") or "")
    cr = state.crs.get(key)
    gone = event_type == "DELETED" or bool(meta.get("deletionTimestamp"))
    if cr is not None and (gone or cr.uid != uid):  # deleted, or re-created under the name
        for kind in list(cr.loops):
            _stop(cr, kind, StopReason.DELETED)
        state.forget(key, cr)
        cr = None
    if gone:
        return
    if cr is None:
        cr = state.enter(key, uid)
    cr.body = body
    post: Poster = kopf_poster(body, logger)
    _start(state, cr, "reconcile", lambda s: reconcile_loop.run(state, cr, s, post, logger))
    if adaptation_loop.wanted(body.get("spec") or {}):
        _start(state, cr, "adaptation", lambda s: adaptation_loop.run(state, cr, s, post))
    else:
        _stop(cr, "adaptation", StopReason.SWITCHED_OFF)
    wakeups.resource_changed(state, key, meta, body.get("status") or {})


async def stop_all(state: OperatorState, timeout: float = STOP_TIMEOUT) -> None:
    """Operator shutdown: stop every loop, let each finish its pass, cancel stragglers."""
    for cr in list(state.crs.values()):
        for kind in list(cr.loops):
            _stop(cr, kind, StopReason.SHUTDOWN)
    tasks = list(state.loop_tasks)
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        log.warning("cancelled %d loop(s) that did not stop within %.0f s", len(pending), timeout)
        await asyncio.wait(pending, timeout=1.0)
