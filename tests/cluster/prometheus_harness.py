"""A real Prometheus server (Debian's package) scraping a vLLM-style test exporter.

The exporter serves ``vllm:inter_token_latency_seconds`` and
``vllm:time_to_first_token_seconds`` histograms whose rates follow values the test
sets: counters are integrated from the wall clock at each scrape, so
``rate(count) / rate(sum)`` over any window reads the decode tokens/s that was set
during that window, and every request's TTFT falls in one bucket.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml
from operator_harness import eventually, free_port
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inference_thresholds_dev.cluster.processes import terminate

MODEL = "llama-test"


class VllmExporter(Collector):
    """One vLLM pod serving one sequence at a time at controlled speeds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decode_tps = 0.0  # tokens per second per sequence; 0 = idle
        self.ttft_seconds = 0.1
        self.requests_per_second = 1.0
        # 1 ms .. ~1000 s, 25 % apart: histogram_quantile lands within 25 % of the truth
        self._buckets = [round(0.001 * 1.25**i, 6) for i in range(62)]
        self._itl_count = 0.0
        self._itl_sum = 0.0
        self._ttft_counts = [0.0] * (len(self._buckets) + 1)
        self._ttft_sum = 0.0
        self._last = time.monotonic()
        self.registry = CollectorRegistry()
        self.registry.register(self)
        # prometheus-client's own server, as in a vLLM pod: Prometheus 2.x negotiates
        # OpenMetrics 1.0 and gets ``vllm_`` names (escaping=underscores), which the
        # presets match too; tests/unit/test_adaptation_alerts.py covers ``vllm:``.
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def set(self, *, decode_tps: float | None = None, ttft_seconds: float | None = None) -> None:
        with self._lock:
            self._advance()
            if decode_tps is not None:
                self.decode_tps = decode_tps
            if ttft_seconds is not None:
                self.ttft_seconds = ttft_seconds

    def _advance(self) -> None:
        now = time.monotonic()
        dt, self._last = now - self._last, now
        if self.decode_tps > 0:
            self._itl_count += self.decode_tps * dt  # tokens generated
            self._itl_sum += dt  # seconds spent between tokens
            n = self.requests_per_second * dt
            idx = next(
                (i for i, b in enumerate(self._buckets) if self.ttft_seconds <= b),
                len(self._buckets),
            )
            self._ttft_counts[idx] += n
            self._ttft_sum += n * self.ttft_seconds

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._advance()
            labels = ["model_name"]
            itl = HistogramMetricFamily(
                "vllm:inter_token_latency_seconds", "Inter-token latency.", labels=labels
            )
            itl.add_metric([MODEL], [("+Inf", self._itl_count)], self._itl_sum)
            ttft = HistogramMetricFamily(
                "vllm:time_to_first_token_seconds", "Time to first token.", labels=labels
            )
            cumulative, acc = [], 0.0
            for bound, count in zip([*self._buckets, float("inf")], self._ttft_counts, strict=True):
                acc += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), acc))
            ttft.add_metric([MODEL], cumulative, self._ttft_sum)
        yield itl
        yield ttft

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class PrometheusServer:
    """``prometheus`` on 127.0.0.1 with tmp storage and a 1 s scrape interval."""

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus (see .ci/run)")
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "vllm", "static_configs": [{"targets": targets}]},
            ],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self.ready, timeout=60, what=f"prometheus ready (log {self.workdir})")

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            log = (self.workdir / "prometheus.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"prometheus exited {self.proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None
