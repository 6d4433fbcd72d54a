"""The reconcile loop of one CR: wait for a change, reconcile, retry.

Each CR's loop waits on its own ``Trigger`` (set by ``wakeups.py``, the policy watch and
the adaptation loop), so no CR waits on another: an isolated change is reconciled at
once, a burst of changes costs a pass at its start and one after it settles
(``trigger.py``). At most ``MAX_CONCURRENT_RECONCILES`` run at once. A failed pass is
retried with exponential backoff (the adaptation loop does not cut it short: see
``CrState.failing``); an exception never ends the loop. Each pass is registered as work
in flight, so /healthz fails when one is wedged.
"""

from __future__ import annotations

import time
from typing import Any

from .events import DecisionEvent, Poster
from .operator_state import CrState, OperatorState
from .reconcile_pass import reconcile_once
from .stopper import Stopper


async def run(
    state: OperatorState,
    cr: CrState,
    stopped: Stopper,
    post: Poster,
    logger: Any,
) -> None:
    """Reconcile this CR whenever it, its nodes, its ConfigMap or the policy change."""
    cr.trigger.set()  # first pass right away (also after an operator restart)
    key = cr.key
    failures = 0
    last_error = ""
    cfg = state.config
    try:
        while not stopped:
            if failures:
                timeout = min(cfg.retry_seconds * 2 ** (failures - 1), cfg.resync_seconds)
            else:
                timeout = cfg.resync_seconds
            await cr.trigger.wait(stopped.wait, timeout)
            if stopped:
                break
            async with state.slots:
                cr.trigger.passed()  # changes seen while waiting for a slot are in this pass
                started = time.monotonic()
                cr.in_flight = True
                claimed = cr.configmap_name
                work = state.running(f"reconcile {key[0]}/{key[1]}", cfg.wedged_seconds)
                try:
                    with work:
                        ok = await reconcile_once(
                            cr.body,
                            cr,
                            nodes=state.nodes.snapshot(),
                            kube=state.kube,
                            policy=state.policy.policy,
                            metrics=state.metrics,
                            post=post,
                            rivals=lambda cm: state.rivals(key, cm),
                        )
                    failures = 0 if ok else failures + 1
                    last_error = ""
                except Exception as exc:  # never let one bad pass end the loop
                    failures += 1
                    kind = type(exc).__name__
                    state.metrics.errors.labels(kind).inc()
                    state.metrics.reconciles.labels("failed").inc()
                    message = f"{kind}: {exc}"[:900]
                    logger.exception("reconcile failed (attempt %d)", failures)
                    if message != last_error:
                        post([DecisionEvent("Warning", "ReconcileError", message)])
                        last_error = message
                finally:
                    cr.in_flight = False
                    cr.failing = failures > 0
                    if cr.configmap_name != claimed:  # its sharers learn it came or went
                        for other in {
                            *state.claimants(key[0], claimed),
                            *state.claimants(key[0], cr.configmap_name),
                        } - {key}:
                            state.kick(other)
                    state.metrics.duration.observe(time.monotonic() - started)
    finally:
        state.forget(cr.key, cr)
