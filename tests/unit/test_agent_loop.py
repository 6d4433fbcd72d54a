"""The agent loop: write-on-change, NVML not ready, API failures, health and metrics."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from agent_fakes import MemoryNodes, node

from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_agent.agent import Agent, AgentMetrics, serve_http
from inference_thresholds_agent.nvidia import GpuState, RecordedNvml
from inference_thresholds_agent.profile import Detector, Scope

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"
DGX = HOSTS / "dgx-a100-80gb"


def recording(**changes: Any) -> RecordedNvml:
    data = json.loads((DGX / "nvml.json").read_text())
    data.update(changes)
    return RecordedNvml(data)


def make_agent(api: Any, nvml: RecordedNvml | None = None, interval: float = 60) -> Agent:
    detector = Detector(DGX, nvml=nvml or recording(), scope=Scope.NODE)
    return Agent("node-a", api, detector, interval_s=interval, metrics=AgentMetrics())


def test_unchanged_profile_costs_zero_writes() -> None:
    api = MemoryNodes(node())
    agent = make_agent(api)
    results = [agent.tick() for _ in range(5)]
    assert [r.wrote for r in results] == [True, False, False, False, False]
    assert all(r.ok and r.next_delay_s == 60 for r in results)
    assert agent.metrics.count("node_writes_total") == 1
    assert agent.metrics.count("detections_total", result="ok") == 5
    assert agent.metrics.count("last_success_timestamp_seconds") > 0
    assert agent.metrics.count("published_labels") == len(
        [k for k in api.node["metadata"]["labels"] if k.startswith(LABEL_PREFIX)]
    )


def test_nvml_not_ready_publishes_cpu_and_retries_with_backoff() -> None:
    api = MemoryNodes(node())
    nvml = recording(initErrors=3)  # the driver container needs three tries
    agent = make_agent(api, nvml)
    delays = []
    for _ in range(3):
        result = agent.tick()
        assert result.ok and result.detection is not None
        assert result.detection.gpu_state is GpuState.PENDING
        delays.append(result.next_delay_s)
    assert delays == [5, 10, 20]  # backoff, capped at the interval
    labels = api.node["metadata"]["labels"]
    assert labels[LABEL_PREFIX + "cpu.logical-cores"] == "256"  # CPU/memory published meanwhile
    assert LABEL_PREFIX + "gpu.count" not in labels
    assert agent.metrics.count("gpu_detection_state", state="pending") == 1
    assert agent.metrics.count("errors_total", stage="gpu") == 3

    ready = agent.tick()
    assert ready.detection is not None and ready.detection.gpu_state is GpuState.OK
    assert ready.next_delay_s == 60
    assert api.node["metadata"]["labels"][LABEL_PREFIX + "gpu.count"] == "8"
    assert agent.metrics.count("gpu_detection_state", state="ok") == 1
    assert nvml.init_calls == 4 and nvml.shutdowns == 1  # shut down only after a good init


def test_driver_restart_keeps_gpu_labels() -> None:
    api = MemoryNodes(node())
    nvml = recording()
    agent = make_agent(api, nvml)
    agent.tick()
    nvml.data["initErrors"] = nvml.init_calls + 2  # driver goes away for two passes
    for _ in range(2):
        result = agent.tick()
        assert result.detection is not None and result.detection.gpu_state is GpuState.PENDING
        assert not result.wrote  # GPU labels neither removed nor re-added
    assert api.node["metadata"]["labels"][LABEL_PREFIX + "gpu.count"] == "8"
    assert agent.metrics.count("node_writes_total") == 1


def test_cpu_node_without_driver_has_no_gpu_labels_and_no_retries() -> None:
    api = MemoryNodes(node())
    agent = make_agent(api, recording(libraryMissing=True))
    # dgx-a100-80gb has NVIDIA GPUs on its PCI bus: a missing library there is "pending".
    assert agent.tick().detection.gpu_state is GpuState.PENDING  # type: ignore[union-attr]
    cpu_only = Agent(
        "node-a",
        api,
        Detector(HOSTS / "arm-graviton3-cgroup-v2", scope=Scope.NODE),
        metrics=AgentMetrics(),
    )
    result = cpu_only.tick()
    assert result.detection is not None and result.detection.gpu_state is GpuState.ABSENT
    assert result.next_delay_s == 60


class FailingNodes(MemoryNodes):
    def __init__(self, node: dict[str, Any], failures: int) -> None:
        super().__init__(node)
        self.failures = failures

    def get_node(self, name: str) -> dict[str, Any]:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("apiserver unreachable")
        return super().get_node(name)


def test_api_errors_back_off_and_recover() -> None:
    api = FailingNodes(node(), failures=2)
    agent = make_agent(api)
    first, second, third = agent.tick(), agent.tick(), agent.tick()
    assert (first.ok, second.ok, third.ok) == (False, False, True)
    assert (first.next_delay_s, second.next_delay_s, third.next_delay_s) == (5, 10, 60)
    assert agent.metrics.count("errors_total", stage="publish") == 2
    assert agent.ready()


def test_detection_crash_is_counted_not_raised() -> None:
    class Broken(Detector):
        def run(self) -> Any:
            raise RuntimeError("parser bug")

    agent = Agent("node-a", MemoryNodes(node()), Broken(DGX), metrics=AgentMetrics())
    result = agent.tick()
    assert not result.ok
    assert agent.metrics.count("detections_total", result="error") == 1
    assert not agent.ready() and agent.alive()


def test_run_loop_stops_on_event() -> None:
    api = MemoryNodes(node())
    agent = make_agent(api, interval=3600)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 30
    while not agent.ready():  # poll the condition, with a deadline
        assert time.monotonic() < deadline, "the loop never published"
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert agent.metrics.count("node_writes_total") == 1


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        make_agent(MemoryNodes(node()), interval=0)


def test_health_and_metrics_endpoints() -> None:
    clock = [1000.0]
    agent = Agent(
        "node-a",
        MemoryNodes(node()),
        Detector(DGX, nvml=recording(), scope=Scope.NODE),
        metrics=AgentMetrics(),
        clock=lambda: clock[0],
    )
    server = serve_http(agent, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:

        def get(path: str) -> tuple[int, str]:
            try:
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        assert get("/healthz")[0] == 200
        assert get("/readyz")[0] == 503  # nothing published yet
        agent.tick()
        assert get("/readyz")[0] == 200
        status, text = get("/metrics")
        assert status == 200
        for name in (
            "inference_thresholds_agent_detections_total",
            "inference_thresholds_agent_errors_total",
            "inference_thresholds_agent_node_writes_total 1.0",
            "inference_thresholds_agent_last_success_timestamp_seconds 1000.0",
            "inference_thresholds_agent_detection_duration_seconds_bucket",
        ):
            assert name in text
        clock[0] += 3 * 60 + 31  # the loop stopped ticking
        assert get("/healthz")[0] == 503
        assert get("/nope")[0] == 404
    finally:
        server.shutdown()
        server.server_close()
