"""Prometheus metrics: counters for the reconcile loop and a collector for per-CR state.

Per-CR gauges come from an in-memory snapshot of each CR's status (rendered when it is
written), so a deleted CR or a vanished class simply stops being exported (no stale
series to clean up).
All metrics live in a dedicated registry: several operators in one test process, or
a restart, never collide on the global one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..adaptation.state import SIGNALS
from ..api.adaptation import AdaptationStatus
from ..api.crd import CONDITION_TYPES, InferenceThresholdsStatus
from ..build_info import register_build_info

METRIC_PREFIX = "inference_thresholds_"

# Threshold field -> (metric suffix in base units, scale from our unit, help).
_GAUGES: dict[str, tuple[str, float, str]] = {
    "min_tokens_per_second": ("min_tokens_per_second", 1.0, "Minimum decode tokens per second."),
    "max_time_to_first_token_ms": (
        "max_time_to_first_token_seconds",
        1e-3,
        "Maximum time to first token, seconds.",
    ),
    "max_latency_ms": ("max_latency_seconds", 1e-3, "Maximum request latency, seconds."),
    "max_memory_usage_mb": ("max_memory_bytes", 2.0**20, "Maximum memory, bytes."),
    "min_speedup_factor": ("min_speedup_ratio", 1.0, "Minimum speedup over FP16 llama.cpp."),
}


def _cr_gauge(suffix: str, help_text: str, *labels: str) -> GaugeMetricFamily:
    """A gauge family with one series per InferenceThresholds (and ``labels``)."""
    return GaugeMetricFamily(
        METRIC_PREFIX + suffix, help_text, labels=["namespace", "name", *labels]
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(metric: str, labels: Mapping[str, str], value: float) -> str:
    """One line of the text format, labels sorted (as prometheus_client writes them)."""
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{pairs}}} {floatToGoString(value)}"  # type: ignore[no-untyped-call]


# The per-CR families: (name, help), in exposition order.
_STATE_FAMILIES: list[tuple[str, str]] = [
    (METRIC_PREFIX + "nodes_matched", "Nodes an InferenceThresholds selects."),
    *(
        (METRIC_PREFIX + f"{kind}_{suffix}", f"{title}: {help_text}")
        for suffix, _, help_text in _GAUGES.values()
        for kind, title in (
            ("effective", "Effective threshold"),
            ("class", "Per hardware class threshold"),
        )
    ),
]
_RESOURCES = METRIC_PREFIX + "resources"


@dataclass
class CrSnapshot:
    conditions: dict[str, str] = field(default_factory=dict)
    # Family name -> this CR's sample lines (one string: 2,000 CRs' 82,000 lines as
    # separate strings were 4 MB of object headers), rendered when its status changed.
    lines: dict[str, str] = field(default_factory=dict)


def _cr_lines(namespace: str, name: str, status: InferenceThresholdsStatus) -> dict[str, str]:
    cr = {"namespace": namespace, "name": name}
    nodes = METRIC_PREFIX + "nodes_matched"
    out = {nodes: _sample(nodes, cr, status.nodes_matched or 0)}
    for field_name, (suffix, scale, _) in _GAUGES.items():
        value = getattr(status.effective, field_name)
        eff = METRIC_PREFIX + f"effective_{suffix}"
        if value is not None:
            out[eff] = _sample(eff, cr, value * scale)
        per_class = METRIC_PREFIX + f"class_{suffix}"
        lines = [
            _sample(per_class, {**cr, "class": c.name}, getattr(c.thresholds, field_name) * scale)
            for c in sorted(status.classes, key=lambda c: c.name)
            if getattr(c.thresholds, field_name) is not None
        ]
        if lines:
            out[per_class] = "\n".join(lines)
    return out


class StateCollector:
    """Per-CR gauges as exposition text, rendered when a CR's status is written, not on
    every scrape: at 2,000 CRs in 7 classes each they are 82,000 samples, and formatting
    them per scrape (prometheus_client's collectors) took 0.8 s of the operator's CPU
    while holding the GIL, so every Prometheus scrape stalled every reconcile."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crs: dict[tuple[str, str], CrSnapshot] = {}

    def update(self, namespace: str, name: str, status: InferenceThresholdsStatus) -> None:
        snap = CrSnapshot(
            conditions={c.type: c.status.value for c in status.conditions},
            lines=_cr_lines(namespace, name, status),
        )
        with self._lock:
            self._crs[(namespace, name)] = snap

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._crs.pop((namespace, name), None)

    def exposition(self, names: Collection[str] | None = None) -> str:
        """The families (those in ``names``, or all) in the text format."""
        with self._lock:
            crs = sorted(self._crs.items())
        out: list[str] = []

        def family(metric: str, help_text: str) -> bool:
            if names is not None and metric not in names:
                return False
            out.append(f"# HELP {metric} {help_text}")
            out.append(f"# TYPE {metric} gauge")
            return True

        if family(_RESOURCES, "InferenceThresholds objects by condition and status."):
            for cond in CONDITION_TYPES:
                for st in ("True", "False", "Unknown"):
                    count = sum(1 for _, s in crs if s.conditions.get(cond, "Unknown") == st)
                    out.append(_sample(_RESOURCES, {"condition": cond, "status": st}, count))
        for metric, help_text in _STATE_FAMILIES:
            if family(metric, help_text):
                out.extend(text for _, snap in crs if (text := snap.lines.get(metric)))
        return "\n".join(out) + "\n" if out else ""


class OperatorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.reconciles = Counter(
            METRIC_PREFIX + "reconciles",
            "Reconciles by result (ok, invalid, failed).",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            METRIC_PREFIX + "reconcile_errors",
            "Reconcile errors by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.duration = Histogram(
            METRIC_PREFIX + "reconcile_duration_seconds",
            "Time to reconcile one InferenceThresholds.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.configmap_writes = Counter(
            METRIC_PREFIX + "configmap_writes",
            "ConfigMap writes by action (created, updated, repaired).",
            ["action"],
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            METRIC_PREFIX + "policy_reloads",
            "Policy file reloads by result (ok, failed).",
            ["result"],
            registry=self.registry,
        )
        self.state = StateCollector()  # served beside the registry (``exposition``)
        self.build_info = register_build_info(self.registry, "kopf")

    def exposition(self, names: Collection[str] | None = None) -> bytes:
        """/metrics: the registry's metrics and the per-CR gauges (``names``: only those
        metrics, as with Prometheus' ``name[]`` parameter)."""
        registry = self.registry.restricted_registry(names) if names else self.registry
        state = self.state.exposition(set(names) if names else None)
        return generate_latest(registry) + state.encode()

    def sample_value(self, name: str, labels: Mapping[str, str]) -> float | None:
        """One sample's value as /metrics serves it (``registry.get_sample_value`` covers
        only the registry, not the per-CR gauges); None when it is not exported."""
        text = self.exposition([name]).decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == dict(labels):
                    return float(sample.value)
        return None


class AdaptationCollector(Collector):
    """Observed levels, confidence, ratios and learned thresholds per CR and class."""

    def __init__(self, states: Callable[[], Mapping[tuple[str, str], AdaptationStatus]]) -> None:
        self._states = states

    def _snapshot(self) -> list[tuple[tuple[str, str], AdaptationStatus]]:
        for _ in range(3):  # the asyncio thread may resize the dict meanwhile
            try:
                return sorted(self._states().items())
            except RuntimeError:
                continue
        return []

    def collect(self) -> Iterator[Metric]:
        observed = {
            "decode": _cr_gauge(
                "observed_decode_tokens_per_second",
                "Observed decode tokens/s per sequence (decodeQuantile of the decayed history).",
                "class",
            ),
            "ttft": _cr_gauge(
                "observed_time_to_first_token_seconds",
                "Observed time to first token, seconds (ttftQuantile of the decayed history).",
                "class",
            ),
        }
        learned = {
            "decode": _cr_gauge(
                "learned_min_tokens_per_second",
                "Learned minimum decode tokens/s (applied, or recommended in mode Recommend).",
                "class",
                "mode",
            ),
            "ttft": _cr_gauge(
                "learned_max_time_to_first_token_seconds",
                "Learned maximum time to first token, seconds (applied or recommended).",
                "class",
                "mode",
            ),
        }
        ratio = _cr_gauge(
            "observed_to_expected_ratio",
            "Observed level / physical expectation (decode: >1 is faster; ttft: >1 is slower).",
            "class",
            "signal",
        )
        confidence = _cr_gauge(
            "adaptation_confidence",
            "Confidence in the observed level, 0..1 (1 - 2^(-history/halfLife)).",
            "class",
            "signal",
        )
        samples = _cr_gauge(
            "adaptation_samples", "Samples since the last reset.", "class", "signal"
        )
        healthy = _cr_gauge(
            "adaptation_healthy", "1 when the last Prometheus query succeeded, else 0."
        )
        for (ns, name), st in self._snapshot():
            healthy.add_metric([ns, name], 1.0 if st.healthy else 0.0)
            for entry in st.classes:
                for sig in SIGNALS:
                    s = getattr(entry, sig.name)
                    if s.threshold is not None:
                        scale = 1e-3 if sig.name == "ttft" else 1.0
                        learned[sig.name].add_metric(
                            [ns, name, entry.name, st.mode.value], s.threshold * scale
                        )
                    if not s.query:
                        continue
                    labels = [ns, name, entry.name, sig.name]
                    confidence.add_metric(labels, s.confidence)
                    samples.add_metric(labels, float(s.samples))
                    if s.observed is None:
                        continue
                    scale = 1e-3 if sig.name == "ttft" else 1.0
                    observed[sig.name].add_metric([ns, name, entry.name], s.observed * scale)
                    expected = getattr(entry.basis, sig.expected_field)
                    if expected:
                        ratio.add_metric(labels, s.observed / expected)
        yield from observed.values()
        yield from learned.values()
        yield from (ratio, confidence, samples, healthy)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


def metrics_app(metrics: OperatorMetrics) -> Callable[..., list[bytes]]:
    """The /metrics WSGI app: everything, or the metrics named by ``name[]``."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        names = parse_qs(environ.get("QUERY_STRING", "")).get("name[]")
        body = metrics.exposition(names)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST)])
        return [body]

    return app


def serve_metrics(metrics: OperatorMetrics, host: str, port: int) -> ThreadingWSGIServer:
    """Serve /metrics from a thread (``shutdown()`` and ``server_close()`` stop it)."""

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = make_server(host, port, metrics_app(metrics), Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
