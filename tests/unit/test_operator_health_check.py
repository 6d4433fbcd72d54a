"""``operator check`` (the chart's `helm test`): each problem named with its fix."""

from __future__ import annotations

import copy
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from inference_thresholds import __version__
from inference_thresholds.api.crdgen import crd
from inference_thresholds.cli.health_check import (
    crd_problems,
    deployment_problems,
    fetch_metrics,
    metrics_problems,
)
from inference_thresholds.cli.main import main


def _installed() -> dict[str, Any]:
    body = copy.deepcopy(crd())
    body["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
    return body


def test_crd_current_stale_missing_or_not_established() -> None:
    assert crd_problems(_installed()) == []
    assert "not installed" in crd_problems(None)[0]
    stale = _installed()
    schema = stale["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    del schema["properties"]["spec"]["properties"]["adaptation"]["properties"]["mode"]
    (problem,) = crd_problems(stale)
    assert "Helm does not upgrade CRDs" in problem and "kubectl apply --server-side" in problem
    pending = _installed()
    pending["status"]["conditions"][0]["status"] = "False"
    assert crd_problems(pending) == [
        "CRD inferencethresholds.thresholds.inference.dev is not Established"
    ]
    unserved = _installed()
    unserved["spec"]["versions"][0]["served"] = False
    assert "does not serve v1alpha1" in crd_problems(unserved)[0]


def test_deployment_rollout() -> None:
    ok = {
        "metadata": {"generation": 2},
        "status": {"observedGeneration": 2, "availableReplicas": 1},
    }
    assert deployment_problems(ok, "ns/op") == []
    assert "not found" in deployment_problems(None, "ns/op")[0]
    rolling = {"metadata": {"generation": 3}, "status": {"observedGeneration": 2}}
    assert "not rolled out" in deployment_problems(rolling, "ns/op")[0]
    down = {"metadata": {"generation": 2}, "status": {"observedGeneration": 2}}
    assert "no available replica" in deployment_problems(down, "ns/op")[0]
    scaled = {"metadata": {"generation": 3}, "spec": {"replicas": 0},
              "status": {"observedGeneration": 3}}  # fmt: skip
    (problem,) = deployment_problems(scaled, "ns/op")
    assert "scaled to 0 replicas" in problem and "kubectl scale deployment op -n ns" in problem


def test_metrics_build_info_of_this_version() -> None:
    labels = f'kopf="1.45.2",python="3.11.7",version="{__version__}"'
    line = f"inference_thresholds_build_info{{{labels}}} 1.0"
    assert metrics_problems(f"# HELP x\n{line}\n") == []
    assert "not our operator" in metrics_problems("up 1\n")[0]
    other = line.replace(f'version="{__version__}"', 'version="0.0.1"')
    assert "another version" in metrics_problems(other)[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"inference_thresholds_build_info 1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def test_metrics_not_listening_yet_is_waited_for_within_bounds() -> None:
    """A rolled-out pod that does not lead yet: refused, then served once it listens."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    servers: list[HTTPServer] = []
    naps: list[float] = []

    def start_listening(seconds: float) -> None:  # the operator takes the Lease meanwhile
        naps.append(seconds)
        if not servers:
            servers.append(HTTPServer(("127.0.0.1", port), _Metrics))
            threading.Thread(target=servers[0].serve_forever, daemon=True).start()

    try:
        body, why = fetch_metrics(url, wait=60, sleep=start_listening)
        assert why == "" and body is not None and "build_info" in body
        assert naps == [1.0]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()

    # Nothing ever listens: refused until the wait is over (a fake clock), then named.
    now = [0.0]
    slept: list[float] = []

    def nap(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    body, why = fetch_metrics(url, wait=5, sleep=nap, clock=lambda: now[0])
    assert body is None and url in why and "refused" in why.lower()
    assert slept == [1.0] * 5
    # Without a wait (a Deployment found broken): one attempt.
    assert fetch_metrics(url, sleep=nap, clock=lambda: now[0])[0] is None
    assert len(slept) == 5


def test_cli_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["operator", "check"]) == 2
    assert "nothing to check" in capsys.readouterr().err
    assert main(["operator", "check", "--deployment", "op"]) == 2
    assert "expected NAMESPACE/NAME" in capsys.readouterr().err
    url = ["--metrics-url", "http://127.0.0.1:9/metrics", "--metrics-wait", "0"]
    assert main(["operator", "check", *url]) == 1
    assert "FAIL: metrics: http://127.0.0.1:9/metrics" in capsys.readouterr().out
