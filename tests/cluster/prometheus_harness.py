"""A real Prometheus server (Debian's package) scraping vLLM-style test exporters.

An exporter serves the inter-token-latency and time-to-first-token histograms of one
vLLM pod — under the names of vLLM >= 0.11 (``vllm:inter_token_latency_seconds``) or
older releases (``vllm:time_per_output_token_seconds``) — whose rates follow values the
test sets: counters are integrated from the wall clock at each scrape, so over any
window the histograms hold the decode speed and TTFT that were set during it.

``backfill`` writes the same histograms for a stretch of the past as OpenMetrics and
turns them into TSDB blocks with ``promtool tsdb create-blocks-from openmetrics``, so a
Prometheus started on that directory already has history when a resource is created.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
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
# 1 ms .. ~1000 s, 25 % apart: histogram_quantile lands within 25 % of the truth
BUCKETS = [round(0.001 * 1.25**i, 6) for i in range(62)]
NEW_ITL, OLD_ITL = "vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds"
TTFT = "vllm:time_to_first_token_seconds"
SGLANG_ITL, SGLANG_TTFT = "sglang:inter_token_latency_seconds", "sglang:time_to_first_token_seconds"


def _bucket(value: float) -> int:
    return next((i for i, b in enumerate(BUCKETS) if value <= b), len(BUCKETS))


class _Histogram:
    """Cumulative state of one histogram (counts per bucket, +Inf last, and the sum)."""

    def __init__(self) -> None:
        self.counts = [0.0] * (len(BUCKETS) + 1)
        self.sum = 0.0

    def observe(self, value: float, times: float) -> None:
        self.counts[_bucket(value)] += times
        self.sum += value * times

    def cumulative(self) -> list[tuple[str, float]]:
        out, acc = [], 0.0
        for bound, count in zip([*BUCKETS, float("inf")], self.counts, strict=True):
            acc += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), acc))
        return out


class _Pod:
    """One sequence at a time at controlled speeds: what both the exporter and the
    backfill integrate over time."""

    def __init__(self, decode_tps: float = 0.0, ttft_seconds: float = 0.1) -> None:
        self.decode_tps = decode_tps  # tokens per second per sequence; 0 = idle
        self.ttft_seconds = ttft_seconds
        self.requests_per_second = 1.0
        self.itl = _Histogram()
        self.ttft = _Histogram()

    def advance(self, dt: float) -> None:
        if self.decode_tps > 0 and dt > 0:
            self.itl.observe(1.0 / self.decode_tps, self.decode_tps * dt)  # tokens generated
            self.ttft.observe(self.ttft_seconds, self.requests_per_second * dt)


class VllmExporter(Collector):
    """One vLLM pod's /metrics (prometheus-client's own server, as in a vLLM pod)."""

    def __init__(self, model: str = MODEL, *, itl_name: str = NEW_ITL) -> None:
        self._lock = threading.Lock()
        self.model = model
        self.itl_name = itl_name
        self._pod = _Pod()
        self._last = time.monotonic()
        self.registry = CollectorRegistry()
        self.registry.register(self)
        # Prometheus 2.x negotiates OpenMetrics 1.0 and gets ``vllm_`` names
        # (escaping=underscores), which the presets match too.
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def decode_tps(self) -> float:
        return self._pod.decode_tps

    def set(self, *, decode_tps: float | None = None, ttft_seconds: float | None = None) -> None:
        with self._lock:
            self._advance()
            if decode_tps is not None:
                self._pod.decode_tps = decode_tps
            if ttft_seconds is not None:
                self._pod.ttft_seconds = ttft_seconds

    def _advance(self) -> None:
        now = time.monotonic()
        self._pod.advance(now - self._last)
        self._last = now

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            self._advance()
            for name, hist in ((self.itl_name, self._pod.itl), (TTFT, self._pod.ttft)):
                family = HistogramMetricFamily(name, name, labels=["model_name"])
                family.add_metric([self.model], hist.cumulative(), hist.sum)
                yield family

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def backfill(
    data_dir: Path,
    workdir: Path,
    pods: dict[str, tuple[str, str, float, float]],
    *,
    span_s: float,
    step_s: float = 15.0,
) -> float:
    """Blocks in ``data_dir`` holding ``span_s`` seconds of history up to now.

    ``pods``: model name -> (ITL histogram name, TTFT histogram name, decode tok/s, TTFT
    seconds). Returns the time of the last sample.
    """
    promtool = shutil.which("promtool")
    if promtool is None:
        raise RuntimeError("promtool not found: apt-get install prometheus (hack/ensure-deps.sh)")
    end = float(int(time.time()))
    times = [end - span_s + i * step_s for i in range(int(span_s // step_s) + 1)]
    families = sorted({name for itl, ttft, _, _ in pods.values() for name in (itl, ttft)})
    lines: list[str] = []
    for family in families:
        lines.append(f"# TYPE {family} histogram")
        for model, (itl, ttft_name, tps, ttft) in pods.items():
            if family not in (itl, ttft_name):
                continue
            pod = _Pod(tps, ttft)
            hist = pod.itl if family == itl else pod.ttft
            previous = times[0]
            for t in times:
                pod.advance(t - previous)
                previous = t
                label = f'model_name="{model}"'
                for le, count in hist.cumulative():
                    lines.append(f'{family}_bucket{{{label},le="{le}"}} {count} {t:.3f}')
                lines.append(f"{family}_count{{{label}}} {hist.cumulative()[-1][1]} {t:.3f}")
                lines.append(f"{family}_sum{{{label}}} {hist.sum} {t:.3f}")
    lines.append("# EOF")
    source = workdir / "history.om"
    source.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"promtool backfill failed:\n{result.stdout}\n{result.stderr}")
    return end


class PrometheusServer:
    """``prometheus`` on 127.0.0.1 with tmp storage and a 1 s scrape interval.

    ``targets`` maps each scrape target to extra labels it gets (e.g. ``{"node": "n1"}``,
    as a relabeling of ``__meta_kubernetes_pod_node_name`` would set).
    """

    def __init__(
        self, workdir: Path, targets: list[str] | dict[str, dict[str, str]] | None = None
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: apt-get install prometheus (see .ci/run)")
        self.binary = binary
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        labelled = targets if isinstance(targets, dict) else {t: {} for t in targets or []}
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": "vllm",
                    "static_configs": [
                        {"targets": [target], "labels": labels}
                        for target, labels in labelled.items()
                    ],
                },
            ],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.targets = len(labelled)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.workdir / "prometheus.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        eventually(self.ready, timeout=60, what=f"prometheus ready (log {self.workdir})")
        if self.targets:
            eventually(self.scraped, timeout=60, what="every target scraped once")

    def scraped(self) -> bool:
        query = urllib.parse.urlencode({"query": "count(up == 1)"})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{query}", timeout=5) as resp:
            result = json.loads(resp.read())["data"]["result"]
        return bool(result) and int(float(result[0]["value"][1])) == self.targets

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
