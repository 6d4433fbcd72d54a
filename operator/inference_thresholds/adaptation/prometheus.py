"""A small client for the Prometheus HTTP API, stdlib only: instant and range queries and
the series endpoint (which tells "this metric never existed here" from "no samples now").

Errors are typed so the operator can say precisely what is wrong (unreachable, refused
credentials, bad PromQL, odd response). The bearer token is kept out of repr, logs and
error messages. Requests go as GET, or as a form POST (which the API accepts too) when
the URL would be long: a class's node matcher can list many nodes.

The endpoint is outside input, so every request is bounded as a whole: ``timeout`` is a
deadline for connecting, the TLS handshake, the headers and the body together (a timer
shuts the socket down when it passes, so a server sending one byte a second is cut off
like a silent one); the body is read in chunks up to ``MAX_RESPONSE_BYTES`` and refused
beyond, never parsed; the JSON's depth and numbers are bounded before it is parsed
(``bounds.py``). Requests go straight to the URL's host: no proxy from the environment,
no redirects.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..bounds import InputRejected, clip, load_json


class PrometheusError(Exception):
    """Base class; ``reason`` is a CamelCase word for conditions."""

    reason = "PrometheusError"


class PrometheusUnreachable(PrometheusError):
    reason = "PrometheusUnreachable"


class PrometheusTimeout(PrometheusUnreachable):
    """No complete answer before the request's deadline (slow or stalled endpoint)."""

    reason = "PrometheusTimeout"


class PrometheusAuthError(PrometheusError):
    reason = "PrometheusUnauthorized"


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected the query (bad PromQL, execution error)."""

    reason = "QueryFailed"


class PrometheusResponseError(PrometheusError):
    """The answer is not what the HTTP API documents, or not one sample."""

    reason = "UnexpectedResponse"


class PrometheusResponseTooLarge(PrometheusResponseError):
    reason = "ResponseTooLarge"


MAX_RESPONSE_BYTES = 4 * 2**20
"""The largest answer a query may give: a history range query of 256 bucket series x 500
points is ~3.8 MB. Parsed JSON takes ~6-10x its size in memory; with the 4 threads
adaptation queries run on, this keeps them under ~200 MiB together."""
MAX_RESPONSE_DEPTH = 32  # an answer nests 5 levels (matrix: 6)
MAX_GET_URL = 4096  # longer queries go as a POST form
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    timestamp: float
    value: float


@dataclass(frozen=True)
class Series:
    """One series of a range query: its labels and (timestamp, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass
class PrometheusClient:
    url: str
    bearer_token: str | None = field(default=None, repr=False)
    ca_pem: str | None = field(default=None, repr=False)
    insecure_skip_verify: bool = False
    timeout: float = 10.0  # seconds for the whole request, not per read
    max_response_bytes: int | None = None  # None: MAX_RESPONSE_BYTES

    def _context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        ctx = (
            ssl.create_default_context(cadata=self.ca_pem)
            if self.ca_pem
            else (ssl.create_default_context())
        )
        if self.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _call(self, path: str, params: list[tuple[str, str]]) -> Any:
        """GET (or POST) ``path`` of the HTTP API; the decoded ``data`` of a success."""
        limit = self.max_response_bytes or MAX_RESPONSE_BYTES
        status, body = self._exchange(path, urllib.parse.urlencode(params), limit)
        if status in (401, 403):
            raise PrometheusAuthError(
                f"{self.url}: HTTP {status}; check adaptation.prometheus.bearerTokenSecretRef"
            )
        if status in (400, 422):
            raise PrometheusQueryError(_api_error(body) or f"HTTP {status}")
        if 300 <= status < 400:
            raise PrometheusUnreachable(
                f"{self.url}: HTTP {status} redirect (not followed); set "
                "adaptation.prometheus.url to the Prometheus API itself"
            )
        if not 200 <= status < 300:
            raise PrometheusUnreachable(f"{self.url}: HTTP {status}")
        return _data(body, limit)

    def _exchange(self, path: str, encoded: str, limit: int) -> tuple[int, bytes]:
        """(status, body) of one request under the total deadline and the size cap."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PrometheusUnreachable(f"{clip(self.url, 200)}: not an http(s) URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise PrometheusUnreachable(f"{clip(self.url, 200)}: invalid port") from None
        target = parts.path.rstrip("/") + path
        headers = {"Accept": "application/json", "Connection": "close"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        body: bytes | None = None
        if len(self.url) + len(path) + 1 + len(encoded) <= MAX_GET_URL:
            target = f"{target}?{encoded}"
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = encoded.encode()
        exchange = _Exchange(parts.hostname, port, self._context(), self.timeout)
        try:
            return exchange.send(target, headers, body, limit, path)
        except PrometheusError:
            raise
        except (http.client.HTTPException, OSError, ValueError) as exc:
            if exchange.expired:
                raise PrometheusTimeout(
                    f"{self.url}: no complete answer within {self.timeout:g}s "
                    "(adaptation.prometheus.timeout, for the whole request)"
                ) from None
            why = str(getattr(exc, "reason", None) or exc)
            if self.bearer_token:  # some messages quote what was sent
                why = why.replace(self.bearer_token, "<token>")
            raise PrometheusUnreachable(f"{self.url}: {clip(why, 300)}") from None

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """GET /api/v1/query; returns the instant vector (a scalar becomes one sample)."""
        params = [("query", promql)]
        if at is not None:
            params.append(("time", f"{at:.3f}"))
        return _instant(self._call("/api/v1/query", params))

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """/api/v1/query_range: one ``Series`` per result series (NaN points dropped)."""
        params = [
            ("query", promql),
            ("start", f"{start:.3f}"),
            ("end", f"{end:.3f}"),
            ("step", f"{step:g}"),
        ]
        return _matrix(self._call("/api/v1/query_range", params))

    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]:
        """/api/v1/series: label sets of the series matching any selector in [start, end]."""
        params = [("match[]", sel) for sel in selectors]
        params += [("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        data = self._call("/api/v1/series", params)
        if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
            raise PrometheusResponseError("series: data is not a list of label sets")
        return [{str(k): str(v) for k, v in d.items()} for d in data]

    def query_value(self, promql: str, at: float | None = None) -> float | None:
        """One number, or None when there is no data (empty vector or NaN: no traffic)."""
        sample = one_sample(self.query(promql, at))
        if sample is None:
            return None
        return None if math.isnan(sample.value) or math.isinf(sample.value) else sample.value


def one_sample(samples: list[Sample]) -> Sample | None:
    """The single sample a one-number query must give; None for an empty vector."""
    if not samples:
        return None
    if len(samples) > 1:
        shown = ", ".join(clip(str(s.labels), 200) for s in samples[:3])
        raise PrometheusResponseError(
            f"query returned {len(samples)} series ({shown}...); aggregate it to one "
            "(sum/avg) or narrow adaptation.labelMatchers"
        )
    return samples[0]


class _Connection(http.client.HTTPConnection):
    """An HTTP(S) connection whose sockets are handed to ``track`` as soon as they exist."""

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        tls: ssl.SSLContext | None,
        track: Callable[[socket.socket], socket.socket],
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self._tls = tls
        self._track = track

    def connect(self) -> None:
        raw = self._track(socket.create_connection((self.host, self.port), self.timeout))
        if self._tls is None:
            self.sock = raw
            return
        wrapped = self._tls.wrap_socket(
            raw, server_hostname=self.host, do_handshake_on_connect=False
        )
        self._track(wrapped)
        wrapped.do_handshake()
        self.sock = wrapped


class _Exchange:
    """One request under a total deadline: when it passes, a timer shuts the socket down,
    which ends whatever read or handshake is blocked on it (``expired`` then says why)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._done = False
        self.expired = False
        self._conn = _Connection(host, port, timeout, tls, self._track)
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shutdown(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for sock in self._sockets:
                _shutdown(sock)

    def send(
        self,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        limit: int,
        path: str,
    ) -> tuple[int, bytes]:
        self._timer.start()
        try:
            method = "GET" if body is None else "POST"
            self._conn.request(method, target, body=body, headers=dict(headers))
            response = self._conn.getresponse()
            length = response.getheader("Content-Length") or ""
            if length.isdigit() and int(length) > limit:
                raise PrometheusResponseTooLarge(_too_large(path, limit, int(length)))
            data = bytearray()
            while chunk := response.read(min(_CHUNK, limit + 1 - len(data))):
                data += chunk
                if len(data) > limit:
                    raise PrometheusResponseTooLarge(_too_large(path, limit, None))
            if self.expired:  # a shut-down socket can look like a short, complete body
                raise TimeoutError("deadline passed")
            return response.status, bytes(data)
        finally:
            with self._lock:
                self._done = True
            self._timer.cancel()
            self._conn.close()


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket (whose own would touch TLS state
    # another thread is using): the blocked read returns at once.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _too_large(path: str, limit: int, length: int | None) -> str:
    size = f" ({length:,} bytes announced)" if length is not None else ""
    return (
        f"{path}: answer larger than {limit:,} bytes{size}, refused unread; narrow the "
        "matchers or shorten adaptation.history"
    )


def _api_error(body: bytes) -> str | None:
    try:
        doc = load_json(
            body, max_bytes=MAX_RESPONSE_BYTES, max_depth=MAX_RESPONSE_DEPTH, what="error"
        )
    except InputRejected:
        return None
    if isinstance(doc, dict) and doc.get("status") == "error":
        return clip(f"{doc.get('errorType', 'error')}: {doc.get('error', '')}", 1000)
    return None


def _data(body: bytes, limit: int = MAX_RESPONSE_BYTES) -> Any:
    try:
        doc: Any = load_json(body, max_bytes=limit, max_depth=MAX_RESPONSE_DEPTH, what="response")
    except InputRejected as exc:
        raise PrometheusResponseError(str(exc).replace("not valid JSON", "not JSON")) from None
    if not isinstance(doc, dict):
        raise PrometheusResponseError("response is not a JSON object")
    if doc.get("status") != "success":
        raise PrometheusQueryError(_api_error(body) or "status is not success")
    return doc.get("data")


def _result(data: Any) -> tuple[Any, list[Any]]:
    if not isinstance(data, dict):
        raise PrometheusResponseError("data is not an object")
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise PrometheusResponseError("data.result is not a list")
    return kind, result


def _number(value: Any) -> float:
    """A sample value: Prometheus sends strings ("1.5", "NaN", "+Inf"); numbers pass too."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise TypeError(f"sample value {clip(repr(value), 60)} is not a number")
    return float(value)


def _labels(item: Any) -> dict[str, str]:
    metric = item.get("metric")
    if metric is None:
        return {}
    if not isinstance(metric, dict) or not all(isinstance(v, str) for v in metric.values()):
        raise TypeError("metric is not a map of label values")
    return {str(k): v for k, v in metric.items()}


def _instant(data: Any) -> list[Sample]:
    kind, result = _result(data)
    try:
        if kind == "scalar":
            return [Sample({}, _number(result[0]), _number(result[1]))]
        if kind == "vector":
            return [
                Sample(_labels(item), _number(item["value"][0]), _number(item["value"][1]))
                for item in result
            ]
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        raise PrometheusResponseError(f"malformed {kind} result: {clip(str(exc), 200)}") from None
    raise PrometheusResponseError(
        f"resultType {clip(str(kind), 40)!r}: use an instant query giving a vector"
    )


def _matrix(data: Any) -> list[Series]:
    kind, result = _result(data)
    if kind != "matrix":
        raise PrometheusResponseError(
            f"resultType {clip(str(kind), 40)!r}: a range query gives a matrix"
        )
    out = []
    try:
        for item in result:
            points = [(_number(t), _number(v)) for t, v in item.get("values") or []]
            out.append(Series(_labels(item), [(t, v) for t, v in points if not math.isnan(v)]))
    except (TypeError, ValueError, AttributeError) as exc:
        raise PrometheusResponseError(f"malformed matrix result: {clip(str(exc), 200)}") from None
    return out
