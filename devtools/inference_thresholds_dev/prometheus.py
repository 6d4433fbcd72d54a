"""A real Prometheus (Debian's package) as a local process on loopback, with rule files.

Scrape jobs are given as they would come out of a ServiceMonitor/PodMonitor: a job name,
loopback targets and the labels relabeling would attach (``namespace``, ``pod``, ``node``).
Rule files are the ``spec`` of PrometheusRule objects (what prometheus-operator writes
for its Prometheus). Everything read back from its HTTP API is bounded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cluster.cluster import free_ports
from .cluster.processes import terminate
from .waiting import eventually

MAX_ANSWER_BYTES = 4 << 20


class PrometheusError(RuntimeError):
    """Prometheus did not start or answered something unusable."""


@dataclass(frozen=True)
class ScrapeJob:
    name: str
    targets: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    honor_labels: bool = False  # the operator's own namespace/name labels win

    def config(self, interval: str) -> dict[str, Any]:
        return {
            "job_name": self.name,
            "scrape_interval": interval,
            "honor_labels": self.honor_labels,
            "static_configs": [{"targets": self.targets, "labels": self.labels}],
        }


class Prometheus:
    """``prometheus`` on 127.0.0.1 (a free port), tmp storage, the given jobs and rules."""

    def __init__(
        self,
        workdir: Path,
        jobs: list[ScrapeJob],
        rule_groups: list[dict[str, Any]],
        *,
        interval: str = "2s",
        port: int | None = None,
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError("prometheus not found: apt-get install prometheus")
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        rules = workdir / "rules.yml"
        rules.write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
        self.promtool_check(rules)
        config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(rules)],
            "scrape_configs": [job.config(interval) for job in jobs],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log = workdir / "prometheus.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def promtool_check(rules: Path) -> None:
        promtool = shutil.which("promtool")
        if promtool is None:
            return  # the server itself refuses bad rules at start
        done = subprocess.run(
            [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise PrometheusError(f"promtool check rules {rules}:\n{done.stdout}{done.stderr}")

    def start(self, timeout: float = 60) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1d",
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        eventually(self._ready, timeout=timeout, what="prometheus ready", error=PrometheusError)

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise PrometheusError(f"prometheus exited {self.proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as resp:
            body = resp.read(MAX_ANSWER_BYTES + 1)
        if len(body) > MAX_ANSWER_BYTES:
            raise PrometheusError(f"{path}: answer over {MAX_ANSWER_BYTES} bytes")
        answer = json.loads(body)
        if answer.get("status") != "success":
            raise PrometheusError(f"{path}: {answer.get('error', answer)}")
        return answer["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector: (labels, value) per sample."""
        data = self._get("/api/v1/query", query=promql)
        return [(r["metric"], float(r["value"][1])) for r in data.get("result", [])]

    def targets_up(self) -> dict[str, bool]:
        """job -> whether every target of it was scraped successfully last time."""
        up: dict[str, bool] = {}
        for labels, value in self.query("up"):
            job = labels.get("job", "")
            up[job] = up.get(job, True) and value == 1
        return up

    def alerts(self, state: str = "firing") -> list[dict[str, str]]:
        """Labels of the alerts in ``state``, from ``ALERTS`` (the series Prometheus writes)."""
        return [labels for labels, _ in self.query(f'ALERTS{{alertstate="{state}"}}')]

    def rule_group_names(self) -> list[str]:
        return [g["name"] for g in self._get("/api/v1/rules").get("groups", [])]
