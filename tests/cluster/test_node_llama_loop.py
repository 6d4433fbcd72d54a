"""The closed loop on the real node (issue 13, items 3-5): an inference pod, real load,
real Prometheus, a real regression caught and cleared.

The chart is installed for real (operator and agent pods, the agent probing memory
bandwidth); llama-server runs as a pod (1 CPU, 1 thread, SmolLM2-135M architecture with
random weights, Q4_0) mounting the ConfigMap of an InferenceThresholds that describes it;
a real Prometheus scrapes it with the chart's and the CR's alert rules loaded; the CR's
adaptation reads that Prometheus. The regression is the pod's CPU limit lowered in place:
CFS throttling, deterministic even on a busy machine. Bounded: a few short requests per
phase, every wait awaits a condition with a deadline.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import yaml
from helm_support import CHART, Helm
from node_support import RealNodeCluster

from inference_thresholds.api.result import Thresholds
from inference_thresholds_dev.llama.node_loop import (
    DECODE_ALERT,
    RELEASE,
    LoopSettings,
    Measurement,
    NodeLoop,
    healthy_phase,
    regression_phase,
)

pytestmark = [pytest.mark.node, pytest.mark.helm, pytest.mark.llama, pytest.mark.timeout(1200)]

NAMESPACE = "inference-thresholds"


@pytest.fixture(scope="module")
def loop(
    real_node: RealNodeCluster, helm: Helm, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeLoop]:
    workload = f"llama-{uuid.uuid4().hex[:6]}"
    # The agent measures this node's memory bandwidth (bounded probe) instead of guessing
    # for a CPU it does not know: the engine's decode expectation rests on it.
    values = real_node.chart_values(
        agent={"probeBandwidth": True, "resources": {"limits": {"memory": "768Mi"}}}
    )
    values_file = helm.values_file(values)
    helm.run(
        "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
        "-f", str(values_file), "--wait", "--timeout=300s",
        kubeconfig=real_node.kube.kubeconfig,
    )  # fmt: skip
    real_node.kubectl("create", "namespace", workload)
    settings = LoopSettings(
        namespace=workload,
        node=real_node.node_name,
        operator_image=real_node.images["operator"].ref,
        operator_metrics_port=int(values["operator"]["metrics"]["port"]),
        agent_metrics_port=int(values["agent"]["metrics"]["port"]),
        helm=helm.binary,
        chart=CHART,
        chart_values=values_file,
    )

    def kubectl(*args: str, input: str | None = None) -> str:
        return real_node.kubectl(*args, input=input)

    node_loop = NodeLoop(
        settings, kubectl, real_node.import_image, tmp_path_factory.mktemp("llama-loop"), print
    )
    try:
        node_loop.deploy()
        yield node_loop
    finally:
        node_loop.stop()
        helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--wait", check=False,
                 kubeconfig=real_node.kube.kubeconfig)  # fmt: skip
        real_node.kubectl("delete", "namespace", workload, "--wait=false")


def _line(label: str, m: Measurement, t: Thresholds) -> str:
    return (
        f"{label}: decode {m.report.decode_tps:.1f} tok/s (min {t.min_tokens_per_second}), "
        f"TTFT {m.report.ttft_ms:.0f} ms (max {t.max_time_to_first_token_ms}), "
        f"memory {m.memory_mib} MiB (max {t.max_memory_usage_mb})"
    )


def test_server_pod_is_cpu_limited_non_root_and_mounts_its_thresholds(loop: NodeLoop) -> None:
    pod = yaml.safe_load(loop.kubectl("get", "pod", loop.pod, "-n", loop.s.namespace, "-o",
                                      "yaml"))  # fmt: skip
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"]["cpu"] in ("1", "1000m")
    args = container["args"]
    assert args[args.index("-t") + 1] == "1" and "--metrics" in args
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/etc/inference-thresholds"]["readOnly"] is True
    assert pod["status"]["qosClass"] == "Guaranteed"
    # Prometheus scrapes the server, the operator and the agent.
    assert loop.prometheus is not None
    up = loop.prometheus.targets_up()
    assert len(up) == 3 and all(up.values()), up
    assert loop.prometheus.query("llamacpp:n_decode_total or llamacpp_n_decode_total")


def test_healthy_pod_passes_and_adaptation_learns_from_the_real_series(loop: NodeLoop) -> None:
    phase = healthy_phase(loop)
    m = phase.measurement
    print(_line("healthy", m, phase.computed))
    if phase.check is None:
        shares = [f"{r.cores_share:.0%}" for r in m.report.results if r.cores_share is not None]
        pytest.skip(f"machine too busy for a healthy baseline: the pod had {shares} of its CPU")
    assert phase.check.passed, phase.check.logs
    assert "check: PASS" in phase.check.logs, phase.check.logs
    assert m.memory_mib is not None  # the container's own high-water mark was compared
    # Adaptation folded the real series in: the level it read from Prometheus is the
    # decode speed the load generator measured (same server, same counters).
    decode = phase.adaptation
    print(f"adaptation after {phase.adapt_seconds:.0f} s of load: {decode.get('note')}")
    assert decode["samples"] >= 3
    assert decode["lastValue"] == pytest.approx(m.report.decode_tps, rel=0.35)
    computed, adapted = phase.computed.min_tokens_per_second, phase.adapted
    assert computed is not None and adapted is not None and adapted.min_tokens_per_second
    expected = loop.document_class().expected.decode_tokens_per_second
    assert expected is not None
    if decode["target"] > computed * 1.01:  # faster than expected: tightened, bounded
        assert phase.adapted_events, "a move is logged as a ThresholdAdapted Event"
        assert computed < adapted.min_tokens_per_second <= expected
    else:  # held, and says why (it never tightens toward slower than the expectation)
        assert adapted.min_tokens_per_second == computed
        assert "held" in decode["note"] or "dead band" in decode["note"], decode["note"]


def test_throttled_pod_fails_fires_the_alert_holds_thresholds_then_clears(
    loop: NodeLoop,
) -> None:
    phase = regression_phase(loop)
    print(_line("throttled", phase.measurement, phase.before))
    assert not phase.check.passed and phase.check.exit_code == 1, phase.check.logs
    assert "min_tokens_per_second" in phase.check.logs, phase.check.logs
    print(f"{DECODE_ALERT} firing {phase.firing_after_s:.0f} s after the resize")
    assert phase.alert["namespace"] == loop.s.namespace and phase.alert["name"] == loop.s.name
    # Nothing else fires: the operator and the agent are healthy (the chart's rules).
    assert phase.firing == [DECODE_ALERT]
    assert phase.beyond_event["type"] == "Warning"
    assert "below minTokensPerSecond" in phase.beyond_event["message"]
    # Adaptation did not loosen anything.
    b, h = phase.before, phase.held
    assert (h.min_tokens_per_second or 0) >= (b.min_tokens_per_second or 0)
    for field in ("max_time_to_first_token_ms", "max_memory_usage_mb", "max_latency_ms"):
        assert (getattr(h, field) or 0) <= (getattr(b, field) or 0), field
    # No Warning on the CR beyond the regression itself (e.g. no PrometheusRule noise).
    warnings = {e["reason"] for e in loop.events() if e["type"] == "Warning"}
    assert warnings <= {"ObservedBeyondThreshold", "AdaptationFailed"}, warnings
    if phase.restore_contended is not None:
        pytest.skip(f"restore not checked: {phase.restore_contended}")
    # Restored: the alert resolved (awaited), the check passes, the Event says so.
    print(f"{DECODE_ALERT} resolved {phase.resolved_after_s:.0f} s after the restore")
    assert phase.restored_check is not None and phase.restored_check.passed, (
        phase.restored_check and phase.restored_check.logs
    )
    assert phase.within_event is not None
