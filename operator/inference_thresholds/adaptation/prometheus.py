"""A small client for the Prometheus HTTP API (instant queries only), stdlib only.

Errors are typed so the operator can say precisely what is wrong (unreachable, refused
credentials, bad PromQL, odd response). The bearer token is kept out of repr, logs and
error messages.
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


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    timestamp: float
    value: float


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

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """GET /api/v1/query; returns the instant vector (a scalar becomes one sample)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        endpoint = self.url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(endpoint, headers={"Accept": "application/json"})
        if self.bearer_token:
            request.add_header("Authorization", f"Bearer {self.bearer_token}")
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._context()
            ) as r:
                body = r.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
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
        return _parse(body)

    def query_value(self, promql: str, at: float | None = None) -> float | None:
        """One number, or None when there is no data (empty vector or NaN: no traffic)."""
        samples = self.query(promql, at)
        if not samples:
            return None
        if len(samples) > 1:
            shown = ", ".join(str(s.labels) for s in samples[:3])
            raise PrometheusResponseError(
                f"query returned {len(samples)} series ({shown}...); aggregate it to one "
                "(sum/avg) or narrow adaptation.labelMatchers"
            )
        value = samples[0].value
        return None if math.isnan(value) or math.isinf(value) else value


def _api_error(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if isinstance(doc, dict) and doc.get("status") == "error":
        return f"{doc.get('errorType', 'error')}: {doc.get('error', '')}"
    return None


def _parse(body: bytes) -> list[Sample]:
    try:
        doc: Any = json.loads(body)
    except ValueError as exc:
        raise PrometheusResponseError(f"response is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PrometheusResponseError("response is not a JSON object")
    if doc.get("status") != "success":
        raise PrometheusQueryError(_api_error(body) or "status is not success")
    data = doc.get("data") or {}
    kind, result = data.get("resultType"), data.get("result")
    if not isinstance(result, list):
        raise PrometheusResponseError("data.result is not a list")
    try:
        if kind == "scalar":
            return [Sample({}, float(result[0]), float(result[1]))]
        if kind == "vector":
            return [
                Sample(
                    dict(item.get("metric") or {}), float(item["value"][0]), float(item["value"][1])
                )
                for item in result
            ]
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise PrometheusResponseError(f"malformed {kind} result: {exc}") from None
    raise PrometheusResponseError(f"resultType {kind!r}: use an instant query giving a vector")
