"""Operator start: a failed step releases what earlier steps took; one Node never fails it;
/healthz fails while work is far past its deadline.

Regression for issue 15 case 1: a failed node listing left the metrics port bound, so
every retry of the startup handler failed with "Address already in use".
"""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from typing import Any

import kopf
import pytest
from operator_fakes import empty_operator_state

from inference_thresholds.controller import lifecycle, wakeups
from inference_thresholds.controller.node_index import node_inputs
from inference_thresholds.controller.node_reports import NodeReport
from inference_thresholds.controller.node_watch import NodeWatch
from inference_thresholds.controller.settings import OperatorConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Client:
    def close(self) -> None:
        pass


class _Nodes:
    """The node watch's client: the node list fails ``failures`` times, then lists
    ``items``; the watch that follows is refused (the watch thread backs off until stopped)."""

    def __init__(self, items: list[dict[str, Any]], failures: int = 0) -> None:
        self.items, self.failures = items, failures
        self.guard = None

    def read(self, method: str, path: str, *_: Any, **__: Any) -> bytes:
        assert (method, path) == ("GET", "/api/v1/nodes")
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("apiserver down")
        return json.dumps({"items": self.items, "metadata": {"resourceVersion": "1"}}).encode()

    def stream(self, *_: Any, **__: Any) -> Any:
        raise ConnectionRefusedError("no watch here")


def test_a_failed_start_releases_the_port_and_a_retry_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = _free_port()
    nodes = _Nodes([{"metadata": {"name": "ok"}, "status": {"capacity": {"cpu": "4"}}}], 1)
    monkeypatch.setattr(lifecycle, "make_api_client", lambda _: _Client())
    monkeypatch.setattr(lifecycle, "Kube", lambda _: nodes)
    config = OperatorConfig(metrics_port=port, metrics_host="127.0.0.1")

    async def scenario() -> None:
        with pytest.raises(kopf.TemporaryError, match="listing Nodes failed"):
            await lifecycle.start(config)
        with socket.socket() as s:  # released: this bind would fail otherwise
            s.bind(("127.0.0.1", port))
        state = await lifecycle.start(config)  # kopf's retry
        try:
            assert list(state.nodes) == ["ok"]
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
            )
            assert b"inference_thresholds_" in body
        finally:
            lifecycle.stop(state)

    asyncio.run(scenario())


def test_the_node_watch_lists_again_until_it_may() -> None:
    """The process's own start (runner.py) retries the node listing in place: a 403 until
    RBAC allows listing Nodes must not end the process."""
    nodes = _Nodes([{"metadata": {"name": "ok"}}], failures=2)
    watch = NodeWatch(nodes, max_backoff=0.01)  # type: ignore[arg-type]

    async def scenario() -> None:
        try:
            await asyncio.wait_for(watch.start(retry_seconds=0.01), timeout=30)
        finally:
            watch.stop()

    asyncio.run(scenario())
    assert list(watch.index) == ["ok"] and nodes.failures == 0
    assert watch.counts.errors >= 2


def test_one_bad_node_is_listed_skipped_in_part_and_reported_once() -> None:
    bad = {
        "metadata": {
            "name": "bad",
            "uid": "u-bad",
            "annotations": {"hw.inference.dev/profile": "[" * 50_000},
        },
        "status": {"capacity": {"cpu": "9e999", "memory": "8Gi"}},
    }
    good = {"metadata": {"name": "good"}, "status": {"capacity": {"cpu": "4"}}}
    state = empty_operator_state()

    def listed(*bodies: dict[str, Any]) -> list[NodeReport]:
        for body in bodies:
            inputs = node_inputs(body)
            state.nodes.apply(inputs.name, inputs)
            wakeups.report_node(state, inputs.name, state.nodes[inputs.name])
        due = []
        while not state.node_report_queue.empty():
            due.append(state.node_report_queue.get_nowait())
        return due

    ((node, message),) = listed(bad, good)
    assert sorted(state.nodes) == ["bad", "good"]
    assert state.nodes["bad"].hardware.profile.memory.total_mib == 8192  # the rest is served
    assert node["metadata"] == {"name": "bad", "uid": "u-bad"}
    assert "nests deeper" in message and "status.capacity.cpu" in message
    # Unchanged on the next listing (or watch event): not reported again.
    assert listed(bad, good) == []


def test_health_fails_while_work_is_past_its_deadline() -> None:
    state = empty_operator_state()
    assert lifecycle.health(state) == {"inFlight": 0}
    with (
        state.running("reconcile ns/slow", budget=-1.0),
        pytest.raises(kopf.PermanentError, match="wedged: reconcile ns/slow"),
    ):
        lifecycle.health(state)
    with state.running("reconcile ns/fine", budget=60.0):
        assert lifecycle.health(state) == {"inFlight": 1}
    assert lifecycle.health(state) == {"inFlight": 0}
