"""A Prometheus HTTP API that misbehaves on purpose, on 127.0.0.1, for tests and benchmarks.

The behaviour is chosen by the first path segment of the URL the operator is given
(``http://127.0.0.1:PORT/<mode>``; the client appends ``/api/v1/query``), so each CR of a
test can point at a different misbehaviour of one server:

| mode                 | answer                                                          |
| -------------------- | --------------------------------------------------------------- |
| ``value/<v>``        | a one-sample vector whose value is the string ``<v>``           |
| ``dribble``          | headers at once, then the body one byte per second, forever     |
| ``dribble-headers``  | the status line and headers one byte per second, forever        |
| ``silent``           | accepts, reads the request, never answers                       |
| ``huge``             | 200, no Content-Length, ``HUGE_BYTES`` of a vector streamed     |
| ``huge-declared``    | ``Content-Length: HUGE_BYTES`` and the same stream              |
| ``deep``             | 200 and a document nested 100,000 levels deep                   |
| ``types``            | valid JSON with the wrong types (value an object)               |
| ``series``           | a vector of 10,000 series                                       |
| ``html``             | 200 and an HTML page                                            |
| ``redirect``         | 302 to another host                                             |

Each request is recorded (mode, seconds the client kept it open, bytes sent) so a test
can show how long the operator held on.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HUGE_BYTES = 400 * 1000 * 1000
_SAMPLE = b'{"metric":{"pod":"p"},"value":[1700000000,"1"]},'


@dataclass
class Served:
    mode: str
    seconds: float
    bytes_sent: int


def _vector(value: str, series: int = 1) -> bytes:
    result = [{"metric": {"pod": f"p{i}"}, "value": [1700000000.0, value]} for i in range(series)]
    doc = {"status": "success", "data": {"resultType": "vector", "result": result}}
    return json.dumps(doc).encode()


class _Handler(BaseHTTPRequestHandler):
    server: HostilePrometheus
    protocol_version = "HTTP/1.1"
    sent = 0  # bytes written to the client so far

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        started = time.monotonic()
        segments = urlsplit(self.path).path.strip("/").split("/")
        mode = segments[0] if segments else ""
        self.sent = 0
        try:
            self._answer(mode, segments)
        except OSError:
            pass  # the client gave up (broken pipe, reset): what the operator should do
        finally:
            self.server.record(Served(mode, time.monotonic() - started, self.sent))
            self.close_connection = True

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.sent += len(data)

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _client_gone(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True as soon as the client has closed (or we stop)."""
        deadline = time.monotonic() + seconds
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                if not self.connection.recv(1, socket.MSG_PEEK):
                    return True  # end of stream: the client hung up
                time.sleep(0.05)  # it sent more than its request: not our business
            if time.monotonic() >= deadline:
                return False
        return True

    def _dribble(self, data: bytes) -> None:
        """One byte a second until the client goes away (or the server stops)."""
        for byte in data:
            self._write(bytes([byte]))
            self.wfile.flush()
            if self._client_gone(1.0):
                return

    def _answer(self, mode: str, segments: list[str]) -> None:
        if mode == "value":
            self._send(200, _vector(segments[1] if len(segments) > 1 else "1"))
        elif mode == "series":
            self._send(200, _vector("1", series=10_000))
        elif mode == "deep":
            self._send(200, b"[" * 100_000 + b"]" * 100_000)
        elif mode == "types":
            result: list[dict[str, Any]] = [{"value": {}}]  # a value must be [time, "v"]
            body = {"status": "success", "data": {"resultType": "vector", "result": result}}
            self._send(200, json.dumps(body).encode())
        elif mode == "html":
            self._send(200, b"<html><body>login</body></html>", "text/html")
        elif mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://example.invalid/api/v1/query")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif mode == "silent":
            while not self._client_gone(60.0):
                pass
        elif mode == "dribble-headers":
            self._dribble(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Pad: " + b"a" * 10**6
            )
        elif mode == "dribble":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self._dribble(_vector("1") * 1000)
        elif mode in ("huge", "huge-declared"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if mode == "huge-declared":
                self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            self._write(b'{"status":"success","data":{"resultType":"vector","result":[')
            block = _SAMPLE * (65536 // len(_SAMPLE))
            while self.sent < HUGE_BYTES and not self.server.stopping.is_set():
                self._write(block)
        else:
            self._send(404, b'{"status":"error","errorType":"not_found","error":"mode"}')


def adaptation(url: str, timeout: str) -> dict[str, Any]:
    """``spec.adaptation`` of a CR that reads every answer from ``url`` as a sample: level
    queries (one number each), no history, an interval of 1 s."""
    return {
        "enabled": True,
        "prometheus": {"url": url, "timeout": timeout},
        "source": "custom",
        "queries": {"decodeTokensPerSecond": "decode", "timeToFirstTokenSeconds": "ttft"},
        "history": "0s",
        "interval": "1s",
        "minSamples": 1,
    }


class HostilePrometheus(ThreadingHTTPServer):
    """``with HostilePrometheus() as prom: prom.url("dribble")``; stopped on exit."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()
        self.served: list[Served] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        port: int = self.server_address[1]
        return port

    def url(self, mode: str) -> str:
        return f"http://127.0.0.1:{self.port}/{mode}"

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def requests(self, mode: str) -> list[Served]:
        with self._lock:
            return [s for s in self.served if s.mode == mode]

    def __enter__(self) -> HostilePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
