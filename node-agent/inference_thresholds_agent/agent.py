"""The node agent loop: detect, publish on change, expose /healthz, /readyz and /metrics.

Failure handling: nothing the node or the API server does makes the process exit.
NVML not ready -> CPU/memory still published, GPU detection retried with backoff;
API errors -> retried with backoff, counted, visible in metrics and /readyz.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from inference_thresholds.build_info import register_build_info

from .labels import ALL_LABELS, LabelFilter
from .nvidia import GpuState
from .profile import Detection, Detector
from .publisher import (
    NodeApi,
    node_adjusted,
    publish,
    with_previous_bandwidth,
    with_previous_gpus,
)

log = logging.getLogger("inference_thresholds_agent")

METRIC_PREFIX = "inference_thresholds_agent_"
DEFAULT_INTERVAL_S = 60.0
_FIRST_RETRY_S = 5.0


class AgentMetrics:
    """The agent's Prometheus metrics, in their own registry (one per agent)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        p = METRIC_PREFIX
        self.detections = Counter(
            p + "detections", "Detection passes, by result.", ["result"], registry=self.registry
        )
        self.errors = Counter(
            p + "errors",
            "Failures, by stage (detect, gpu, publish).",
            ["stage"],
            registry=self.registry,
        )
        self.writes = Counter(
            p + "node_writes", "PATCH requests sent to the Node object.", registry=self.registry
        )
        self.last_success = Gauge(
            p + "last_success_timestamp_seconds",
            "Unix time of the last pass that detected and published (or found no change).",
            registry=self.registry,
        )
        self.detection_seconds = Histogram(
            p + "detection_duration_seconds",
            "Time one detection pass took.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.gpu_state = Gauge(
            p + "gpu_detection_state",
            "1 for the current GPU detection state (ok, absent, pending).",
            ["state"],
            registry=self.registry,
        )
        self.labels = Gauge(
            p + "published_labels", "Labels the agent owns on its node.", registry=self.registry
        )
        self.build_info = register_build_info(self.registry)
        for result in ("ok", "error"):
            self.detections.labels(result)
        for stage in ("detect", "gpu", "publish"):
            self.errors.labels(stage)

    def count(self, name: str, **labels: str) -> float:
        """A sample's current value (tests and the benchmark read counters through this)."""
        value: float | None = self.registry.get_sample_value(METRIC_PREFIX + name, labels or None)
        return float(value) if value is not None else 0.0


@dataclass
class TickResult:
    ok: bool
    wrote: bool
    next_delay_s: float
    detection: Detection | None = None


class Agent:
    def __init__(
        self,
        node_name: str,
        api: NodeApi,
        detector: Detector,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        metrics: AgentMetrics | None = None,
        clock: Callable[[], float] = time.time,
        labels: LabelFilter = ALL_LABELS,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval must be positive seconds, got {interval_s}")
        self.node_name = node_name
        self.api = api
        self.detector = detector
        self.interval_s = interval_s
        self.metrics = metrics or AgentMetrics()
        self.labels = labels
        self.clock = clock
        self.started_at = clock()
        self.last_tick_at: float | None = None
        self.last_success_at: float | None = None
        self._gpu_retries = 0
        self._error_retries = 0
        self._lock = threading.Lock()

    def _backoff(self, attempt: int) -> float:
        delay: float = _FIRST_RETRY_S * 2.0 ** max(0, attempt - 1)
        return min(self.interval_s, delay)

    def tick(self) -> TickResult:
        """One pass: detect, read the Node, patch what differs. Never raises."""
        with self._lock:
            self.last_tick_at = self.clock()
            try:
                detection = self.detector.run()
            except Exception:  # a parser bug must not kill the DaemonSet pod
                log.exception("detection failed")
                self.metrics.detections.labels("error").inc()
                self.metrics.errors.labels("detect").inc()
                self._error_retries += 1
                return TickResult(False, False, self._backoff(self._error_retries))
            self.metrics.detections.labels("ok").inc()
            self.metrics.detection_seconds.observe(detection.duration_s)
            for state in GpuState:
                self.metrics.gpu_state.labels(state.value).set(
                    1 if detection.gpu_state is state else 0
                )
            if detection.gpu_state is GpuState.PENDING:
                self.metrics.errors.labels("gpu").inc()
                self._gpu_retries += 1
                # Loud on the first miss and every 10th, not on every retry.
                level = logging.WARNING if self._gpu_retries % 10 == 1 else logging.DEBUG
                log.log(level, "GPU detection pending (try %d): %s", self._gpu_retries,
                        "; ".join(detection.notes[-1:]))  # fmt: skip
            else:
                self._gpu_retries = 0

            try:
                node = self.api.get_node(self.node_name)
                profile = with_previous_bandwidth(node_adjusted(detection.profile, node), node)
                if detection.gpu_state is GpuState.PENDING:
                    profile = with_previous_gpus(profile, node)
                result = publish(self.api, node, profile, self.labels)
            except Exception as exc:
                log.warning("publishing to node %s failed: %s", self.node_name, exc)
                self.metrics.errors.labels("publish").inc()
                self._error_retries += 1
                return TickResult(False, False, self._backoff(self._error_retries), detection)
            self._error_retries = 0
            if result.written:
                self.metrics.writes.inc()
                changed = result.patch["metadata"].get("labels", {})
                log.info(
                    "node %s updated: %d label(s) set, %d removed%s",
                    self.node_name,
                    sum(v is not None for v in changed.values()),
                    sum(v is None for v in changed.values()),
                    ", profile annotation" if "annotations" in result.patch["metadata"] else "",
                )
            self.metrics.labels.set(result.owned_labels)
            self.last_success_at = self.clock()
            self.metrics.last_success.set(self.last_success_at)
            delay = (
                self._backoff(self._gpu_retries)
                if detection.gpu_state is GpuState.PENDING
                else self.interval_s
            )
            return TickResult(True, result.written, delay, detection)

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; waits on the event, so stopping is immediate."""
        while not stop.is_set():
            result = self.tick()
            stop.wait(result.next_delay_s)

    # Health: alive while the loop keeps ticking (an API outage is not a reason to
    # restart the pod); ready once a pass has published.
    def alive(self) -> bool:
        last = self.last_tick_at or self.started_at
        return self.clock() - last <= 3 * self.interval_s + 30

    def ready(self) -> bool:
        return self.last_success_at is not None


class _Handler(BaseHTTPRequestHandler):
    agent: Agent

    def do_GET(self) -> None:
        if self.path == "/healthz":
            alive = self.agent.alive()
            self._reply(200 if alive else 503, b"ok\n" if alive else b"loop stalled\n")
        elif self.path == "/readyz":
            ready = self.agent.ready()
            self._reply(200 if ready else 503, b"ok\n" if ready else b"not published yet\n")
        elif self.path == "/metrics":
            self._reply(200, generate_latest(self.agent.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            self._reply(404, b"not found\n")

    def _reply(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds
        pass


def serve_http(agent: Agent, address: str, port: int) -> ThreadingHTTPServer:
    """Start /healthz, /readyz and /metrics in a daemon thread; returns the server."""
    handler = type("AgentHandler", (_Handler,), {"agent": agent})
    server = ThreadingHTTPServer((address, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="agent-http", daemon=True).start()
    return server
