"""Operator start: a failed step releases what earlier steps took; one Node never fails it;
/healthz fails while work is far past its deadline.

Regression for issue 15 case 1: a failed node listing left the metrics port bound, so
every retry of the startup handler failed with "Address already in use".
"""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from typing import Any

import kopf
import pytest
from operator_fakes import empty_operator_state

from inference_thresholds.controller import lifecycle, wakeups
from inference_thresholds.controller.node_reports import NodeReports
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
    """Kube.list_nodes stand-in: fails ``failures`` times, then lists ``items``."""

    def __init__(self, items: list[dict[str, Any]], failures: int = 0) -> None:
        self.items, self.failures = items, failures

    def list_nodes(self) -> list[dict[str, Any]]:
        if self.failures:
            self.failures -= 1
            raise ConnectionRefusedError("apiserver down")
        return self.items


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
    reports = NodeReports()
    records, due = wakeups.list_nodes(_Nodes([bad, good]), reports)  # type: ignore[arg-type]
    assert sorted(records) == ["bad", "good"]
    assert records["bad"].hardware.profile.memory.total_mib == 8192  # the rest is served
    ((node, message),) = due
    assert node["metadata"] == {"name": "bad", "uid": "u-bad"}
    assert "nests deeper" in message and "status.capacity.cpu" in message
    # Unchanged on the next listing (or watch event): not reported again.
    assert wakeups.list_nodes(_Nodes([bad, good]), reports)[1] == []  # type: ignore[arg-type]


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
