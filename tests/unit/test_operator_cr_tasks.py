"""Per-CR loops without kopf daemons: started by a CR's events, stopped with the reason.

The real apiserver shows the consequence (no finalizer, deletion never waits for the
operator) in tests/cluster/test_operator_uninstall.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from operator_fakes import empty_operator_state

from inference_thresholds.controller import adaptation_loop, cr_tasks, reconcile_loop
from inference_thresholds.controller.operator_state import CrState, OperatorState
from inference_thresholds.controller.stopper import Stopper, StopReason

KEY = ("ns", "cr")
LOG = logging.getLogger("test")


def _body(uid: str = "u1", generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "cr", "uid": uid, "generation": generation},
        "spec": {"model": {"preset": "llama-3.1-8b"}, **spec},
        "status": {},
    }


class Recorder:
    """Stands in for the two loops: runs until stopped, records how each one ended."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str]] = []  # (kind, uid)
        self.ended: list[tuple[str, str, StopReason | None]] = []

    def loop(self, kind: str) -> Any:
        async def run(state: OperatorState, cr: CrState, stopped: Stopper, *_: Any) -> None:
            self.started.append((kind, cr.uid))
            await stopped.wait()
            self.ended.append((kind, cr.uid, stopped.reason))

        return run


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    rec = Recorder()
    monkeypatch.setattr(reconcile_loop, "run", rec.loop("reconcile"))
    monkeypatch.setattr(adaptation_loop, "run", rec.loop("adaptation"))
    return rec


async def _until(check: Any, what: str) -> None:
    """Yield to the event loop until ``check()`` holds (tasks start and end in a few turns)."""
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not reached: {what}")


def test_loops_follow_the_cr_events(recorder: Recorder) -> None:
    async def scenario() -> None:
        state = empty_operator_state()
        on = {"adaptation": {"alertRules": {"enabled": True}}}
        cr_tasks.resource_event(state, KEY, None, _body(), LOG)  # initial listing
        cr_tasks.resource_event(state, KEY, "MODIFIED", _body(generation=2), LOG)
        await _until(lambda: recorder.started, "reconcile loop started")
        await asyncio.sleep(0)
        assert recorder.started == [("reconcile", "u1")]  # one loop, not one per event
        cr = state.crs[KEY]
        assert cr.body["metadata"]["generation"] == 2 and cr.trigger.is_set()

        cr_tasks.resource_event(state, KEY, "MODIFIED", _body(**on), LOG)
        await _until(lambda: ("adaptation", "u1") in recorder.started, "adaptation started")
        cr_tasks.resource_event(state, KEY, "MODIFIED", _body(), LOG)  # switched off
        await _until(lambda: recorder.ended, "adaptation stopped")
        assert recorder.ended == [("adaptation", "u1", StopReason.SWITCHED_OFF)]

        # re-created under the same name (a new uid): old loops end, new ones start
        cr_tasks.resource_event(state, KEY, "ADDED", _body(uid="u2", **on), LOG)
        await _until(lambda: len(recorder.started) == 4 and len(recorder.ended) == 2, "restart")
        assert ("reconcile", "u1", StopReason.DELETED) in recorder.ended
        assert {("reconcile", "u2"), ("adaptation", "u2")} <= set(recorder.started)
        assert state.crs[KEY].uid == "u2"

        deleting = _body(uid="u2")
        deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        cr_tasks.resource_event(state, KEY, "MODIFIED", deleting, LOG)
        assert KEY not in state.crs
        await _until(lambda: not state.loop_tasks, "loops of the deleted CR ended")
        assert ("adaptation", "u2", StopReason.DELETED) in recorder.ended
        cr_tasks.resource_event(state, KEY, "DELETED", _body(uid="u2"), LOG)  # nothing left
        assert KEY not in state.crs

    asyncio.run(scenario())


def test_shutdown_stops_every_loop_and_cancels_one_that_hangs(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    cancelled = asyncio.Event()

    async def stubborn(state: OperatorState, cr: CrState, stopped: Stopper, *_: Any) -> None:
        try:
            await asyncio.Event().wait()  # ignores its stopper
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def scenario() -> None:
        state = empty_operator_state()
        cr_tasks.resource_event(state, KEY, None, _body(), LOG)
        monkeypatch.setattr(reconcile_loop, "run", stubborn)
        cr_tasks.resource_event(state, ("ns", "other"), None, _body(uid="u3"), LOG)
        await _until(lambda: recorder.started, "loops started")
        await cr_tasks.stop_all(state, timeout=0.2)
        assert ("reconcile", "u1", StopReason.SHUTDOWN) in recorder.ended
        assert cancelled.is_set() and not state.loop_tasks

    asyncio.run(scenario())
