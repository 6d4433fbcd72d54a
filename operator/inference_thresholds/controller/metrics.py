"""Prometheus metrics: counters for the reconcile loop and a collector for per-CR state.

Per-CR gauges come from custom collectors over an in-memory snapshot, so a deleted
CR or a vanished class simply stops being exported (no stale series to clean up).
All metrics live in a dedicated registry: several operators in one test process, or
a restart, never collide on the global one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..adaptation.state import SIGNALS
from ..api import Thresholds
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


@dataclass
class CrSnapshot:
    conditions: dict[str, str] = field(default_factory=dict)
    effective: Thresholds = field(default_factory=Thresholds)
    classes: dict[str, Thresholds] = field(default_factory=dict)
    nodes_matched: int = 0


class StateCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._crs: dict[tuple[str, str], CrSnapshot] = {}

    def update(self, namespace: str, name: str, status: InferenceThresholdsStatus) -> None:
        snap = CrSnapshot(
            conditions={c.type: c.status.value for c in status.conditions},
            effective=status.effective,
            classes={c.name: c.thresholds for c in status.classes},
            nodes_matched=status.nodes_matched or 0,
        )
        with self._lock:
            self._crs[(namespace, name)] = snap

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._crs.pop((namespace, name), None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            crs = dict(self._crs)
        by_cond = GaugeMetricFamily(
            METRIC_PREFIX + "resources",
            "InferenceThresholds objects by condition and status.",
            labels=["condition", "status"],
        )
        for cond in CONDITION_TYPES:
            for st in ("True", "False", "Unknown"):
                count = sum(1 for s in crs.values() if s.conditions.get(cond, "Unknown") == st)
                by_cond.add_metric([cond, st], count)
        yield by_cond
        nodes = _cr_gauge("nodes_matched", "Nodes an InferenceThresholds selects.")
        for (ns, name), snap in sorted(crs.items()):
            nodes.add_metric([ns, name], snap.nodes_matched)
        yield nodes
        for field_name, (suffix, scale, help_text) in _GAUGES.items():
            eff = _cr_gauge(f"effective_{suffix}", f"Effective threshold: {help_text}")
            per_class = _cr_gauge(
                f"class_{suffix}", f"Per hardware class threshold: {help_text}", "class"
            )
            for (ns, name), snap in sorted(crs.items()):
                value = getattr(snap.effective, field_name)
                if value is not None:
                    eff.add_metric([ns, name], value * scale)
                for cls, thr in sorted(snap.classes.items()):
                    value = getattr(thr, field_name)
                    if value is not None:
                        per_class.add_metric([ns, name, cls], value * scale)
            yield eff
            yield per_class


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
        self.state = StateCollector()
        self.registry.register(self.state)
        self.build_info = register_build_info(self.registry, "kopf")


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
