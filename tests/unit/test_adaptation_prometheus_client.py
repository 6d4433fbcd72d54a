"""The Prometheus HTTP API client against a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from inference_thresholds.adaptation.prometheus import (
    PrometheusAuthError,
    PrometheusClient,
    PrometheusQueryError,
    PrometheusResponseError,
    PrometheusUnreachable,
)

TOKEN = "s3cr3t-token-value"


class _Api(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, Any]] = {}
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self._answer(url.path, parse_qs(url.query), "GET")

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        self._answer(urlparse(self.path).path, form, "POST")

    def _answer(self, path: str, params: dict[str, list[str]], method: str) -> None:
        query = (params.get("query") or params.get("match[]") or [""])[0]
        type(self).seen.append(
            {"path": path, "query": query, "auth": self.headers["Authorization"],
             "method": method, "params": params}
        )  # fmt: skip
        code, body = type(self).answers.get(
            query, (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
        )
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    _Api.answers, _Api.seen = {}, []
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _vector(*values: tuple[dict[str, str], str]) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [1700000000.5, v]} for m, v in values],
        },
    }


def test_parses_vector_and_scalar_values_from_strings(api: str) -> None:
    _Api.answers = {
        "up": (200, _vector(({"job": "a"}, "42.5"))),
        "scalar(1)": (
            200,
            {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "7"]}},
        ),
        "nan": (200, _vector(({}, "NaN"))),
    }
    client = PrometheusClient(api, bearer_token=TOKEN)
    samples = client.query("up")
    assert samples[0].labels == {"job": "a"} and samples[0].value == 42.5
    assert client.query_value("scalar(1)") == 7.0
    assert client.query_value("nan") is None  # 0/0: no traffic, no sample
    assert client.query_value("empty") is None
    assert _Api.seen[0]["path"] == "/api/v1/query"
    assert _Api.seen[0]["auth"] == f"Bearer {TOKEN}"


def test_errors_are_typed_and_never_leak_the_token(api: str) -> None:
    _Api.answers = {
        "bad(": (
            400,
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"},
        ),
        "secret": (401, b"unauthorized"),
        "two": (200, _vector(({"pod": "a"}, "1"), ({"pod": "b"}, "2"))),
        "junk": (200, b"<html>"),
        "matrix": (200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
    }
    client = PrometheusClient(api, bearer_token=TOKEN)
    with pytest.raises(PrometheusQueryError, match="bad_data: parse error") as bad:
        client.query("bad(")
    assert bad.value.reason == "QueryFailed"
    with pytest.raises(PrometheusAuthError, match="bearerTokenSecretRef") as auth:
        client.query("secret")
    with pytest.raises(PrometheusResponseError, match="2 series"):
        client.query_value("two")
    with pytest.raises(PrometheusResponseError, match="not JSON"):
        client.query("junk")
    with pytest.raises(PrometheusResponseError, match="matrix"):
        client.query("matrix")
    for text in (repr(client), str(bad.value), str(auth.value)):
        assert TOKEN not in text


def test_unreachable_and_timeouts() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PrometheusUnreachable) as exc:
        PrometheusClient(f"http://127.0.0.1:{port}", timeout=2).query("up")
    assert exc.value.reason == "PrometheusUnreachable"
    # a server that accepts but never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(PrometheusUnreachable):
            PrometheusClient(url, timeout=0.5).query("up")


def test_tls_with_a_ca_from_the_secret_and_without(tmp_path: Path) -> None:
    from inference_thresholds_dev.cluster.pki import generate_pki

    pki = generate_pki(tmp_path / "pki")
    _Api.answers, _Api.seen = {"up": (200, _vector(({}, "1")))}, []
    server = HTTPServer(("127.0.0.1", 0), _Api)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki.apiserver_cert, pki.apiserver_key)  # SAN includes 127.0.0.1
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        ca = pki.ca_cert.read_text()
        assert PrometheusClient(url, ca_pem=ca, bearer_token=TOKEN).query_value("up") == 1.0
        assert _Api.seen[-1]["auth"] == f"Bearer {TOKEN}"
        with pytest.raises(PrometheusUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
            PrometheusClient(url, timeout=5).query("up")  # system CAs do not know ours
        assert PrometheusClient(url, insecure_skip_verify=True).query_value("up") == 1.0
    finally:
        server.shutdown()
        server.server_close()


def test_range_queries_series_and_long_queries_as_post(api: str) -> None:
    matrix = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [
                {"metric": {"le": "0.1"}, "values": [[100, "1"], [110, "NaN"], [120, "3"]]},
                {"metric": {"le": "+Inf"}, "values": [[100, "2"], [120, "4"]]},
            ],
        },
    }
    series = {"status": "success", "data": [{"__name__": "vllm:x_count", "pod": "a"}]}
    long = 'sum(rate(x{node=~"' + "|".join(f"node-{i:04d}" for i in range(600)) + '"}[5m]))'
    _Api.answers = {
        "range": (200, matrix),
        "vllm_x": (200, series),
        long: (200, _vector(({}, "5"))),
    }
    client = PrometheusClient(api)
    got = client.query_range("range", 100.0, 120.0, 10.0)
    assert [s.labels for s in got] == [{"le": "0.1"}, {"le": "+Inf"}]
    assert got[0].points == [(100.0, 1.0), (120.0, 3.0)]  # NaN points dropped
    assert _Api.seen[-1]["path"] == "/api/v1/query_range"
    assert _Api.seen[-1]["params"]["step"] == ["10"] and _Api.seen[-1]["method"] == "GET"
    assert client.series(["vllm_x"], 0.0, 100.0) == [{"__name__": "vllm:x_count", "pod": "a"}]
    assert _Api.seen[-1]["path"] == "/api/v1/series"
    # a query too long for a URL goes as a form POST, answered the same
    assert client.query_value(long) == 5.0
    assert _Api.seen[-1]["method"] == "POST" and _Api.seen[-1]["query"] == long
    with pytest.raises(PrometheusResponseError, match="range query gives a matrix"):
        client.query_range("empty-vector", 0.0, 1.0, 1.0)


def test_an_oversized_answer_is_refused_unread(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_thresholds.adaptation import prometheus

    monkeypatch.setattr(prometheus, "MAX_RESPONSE_BYTES", 1000)
    big = _vector(*[({"pod": f"p{i}"}, "1") for i in range(100)])
    _Api.answers = {"big": (200, big)}
    with pytest.raises(PrometheusResponseError, match="answer larger than"):
        PrometheusClient(api).query("big")
