"""A small client for the Prometheus HTTP API, stdlib only: instant and range queries and
the series endpoint (which tells "this metric never existed here" from "no samples now").

Errors are typed so the operator can say precisely what is wrong (unreachable, refused
credentials, bad PromQL, odd response). The bearer token is kept out of repr, logs and
error messages. Requests go as GET, or as a form POST (which the API accepts too) when
the URL would be long: a class's node matcher can list many nodes. Answers are read up
to ``MAX_RESPONSE_BYTES``; a larger one is an error, never parsed.
"""

from __future__ import annotations

import json
import math
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any


class PrometheusError(Exception):
    """Base class; ``reason`` is a CamelCase word for conditions."""

    reason = "PrometheusError"


class PrometheusUnreachable(PrometheusError):
    reason = "PrometheusUnreachable"


class PrometheusAuthError(PrometheusError):
    reason = "PrometheusUnauthorized"


class PrometheusQueryError(PrometheusError):
    """Prometheus rejected the query (bad PromQL, execution error)."""

    reason = "QueryFailed"


class PrometheusResponseError(PrometheusError):
    """The answer is not what the HTTP API documents, or not one sample."""

    reason = "UnexpectedResponse"


MAX_RESPONSE_BYTES = 16 * 2**20
MAX_GET_URL = 4096  # longer queries go as a POST form


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
    timeout: float = 10.0

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
        base = self.url.rstrip("/") + path
        encoded = urllib.parse.urlencode(params)
        headers = {"Accept": "application/json"}
        if self.bearer_token:
            headers["Authorization"] = f"Bearer {self.bearer_token}"
        if len(base) + 1 + len(encoded) <= MAX_GET_URL:
            request = urllib.request.Request(f"{base}?{encoded}", headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = urllib.request.Request(base, data=encoded.encode(), headers=headers)
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._context()
            ) as r:
                body = r.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(64 * 1024)
            if exc.code in (401, 403):
                raise PrometheusAuthError(
                    f"{self.url}: HTTP {exc.code}; check adaptation.prometheus.bearerTokenSecretRef"
                ) from None
            if exc.code in (400, 422):
                raise PrometheusQueryError(_api_error(body) or f"HTTP {exc.code}") from None
            raise PrometheusUnreachable(f"{self.url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
            why = getattr(exc, "reason", exc)
            raise PrometheusUnreachable(f"{self.url}: {why}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise PrometheusResponseError(
                f"{path}: answer larger than {MAX_RESPONSE_BYTES:,} bytes; narrow the "
                "matchers or shorten adaptation.history"
            )
        return _data(body)

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
        shown = ", ".join(str(s.labels) for s in samples[:3])
        raise PrometheusResponseError(
            f"query returned {len(samples)} series ({shown}...); aggregate it to one "
            "(sum/avg) or narrow adaptation.labelMatchers"
        )
    return samples[0]


def _api_error(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("status") == "error":
        return f"{doc.get('errorType', 'error')}: {doc.get('error', '')}"
    return None


def _data(body: bytes) -> Any:
    try:
        doc: Any = json.loads(body)
    except ValueError as exc:
        raise PrometheusResponseError(f"response is not JSON: {exc}") from None
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


def _labels(item: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in dict(item.get("metric") or {}).items()}


def _instant(data: Any) -> list[Sample]:
    kind, result = _result(data)
    try:
        if kind == "scalar":
            return [Sample({}, float(result[0]), float(result[1]))]
        if kind == "vector":
            return [
                Sample(_labels(item), float(item["value"][0]), float(item["value"][1]))
                for item in result
            ]
    except (TypeError, KeyError, IndexError, ValueError, AttributeError) as exc:
        raise PrometheusResponseError(f"malformed {kind} result: {exc}") from None
    raise PrometheusResponseError(f"resultType {kind!r}: use an instant query giving a vector")


def _matrix(data: Any) -> list[Series]:
    kind, result = _result(data)
    if kind != "matrix":
        raise PrometheusResponseError(f"resultType {kind!r}: a range query gives a matrix")
    out = []
    try:
        for item in result:
            points = [(float(t), float(v)) for t, v in item.get("values") or []]
            out.append(Series(_labels(item), [(t, v) for t, v in points if not math.isnan(v)]))
    except (TypeError, ValueError, AttributeError) as exc:
        raise PrometheusResponseError(f"malformed matrix result: {exc}") from None
    return out
