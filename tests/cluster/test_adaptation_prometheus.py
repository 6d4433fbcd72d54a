"""Runtime adaptation end to end: the operator, a real Prometheus, a vLLM-style exporter.

Shows: thresholds move toward sustained better-than-expected performance, each move
within maxStepPercent and never past the physical expectation; the ConfigMap follows;
a sustained regression does not lower them; state survives an operator restart;
Prometheus down or a bad query -> Adapted=False with the reason, thresholds held.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiException
from operator_harness import Cluster, OperatorProcess, eventually, nodes, unique
from prometheus_harness import MODEL, PrometheusServer, VllmExporter

from inference_thresholds_dev.cluster.access import ClusterAccess

pytestmark = pytest.mark.prometheus

LLAMA = {"preset": "llama-3.1-8b"}
STEP = 0.10


@pytest.fixture(scope="module")
def exporter() -> Iterator[VllmExporter]:
    e = VllmExporter()
    yield e
    e.close()


@pytest.fixture(scope="module")
def prometheus(
    exporter: VllmExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{exporter.port}"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pool(cluster: Cluster) -> Iterator[str]:
    name = unique("pool")
    with nodes(cluster, [(f"{name}-cpu", {"test.inference.dev/pool": name}, {})]):
        yield name


def _spec(pool: str, adaptation: dict[str, Any]) -> dict[str, Any]:
    return {
        "nodeSelector": {"matchLabels": {"test.inference.dev/pool": pool}},
        "model": LLAMA,
        "adaptation": {
            "enabled": True,
            "source": "vllm",
            "labelMatchers": [{"label": "model_name", "value": MODEL}],
            "interval": "2s",
            "window": "10s",
            "halfLife": "20s",
            "minSamples": 3,
            "maxStepPercent": STEP * 100,
            **adaptation,
        },
    }


def _adaptation(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict((cluster.cr(namespace, name).get("status") or {}).get("adaptation") or {})


def test_bad_query_is_reported_and_thresholds_stay_computed(
    cluster: Cluster, operator: OperatorProcess, prometheus: PrometheusServer, namespace: str,
    pool: str,
) -> None:  # fmt: skip
    adaptation = {
        "prometheus": {"url": prometheus.url},
        "source": "custom",
        "queries": {"decodeTokensPerSecond": "sum(rate(vllm:generation_tokens_total[$window]"},
    }
    cluster.create_cr(namespace, "badq", _spec(pool, adaptation))
    cr = cluster.await_condition(namespace, "badq", "Adapted", "False", reason="QueryFailed")
    cond = next(c for c in cr["status"]["conditions"] if c["type"] == "Adapted")
    assert "parse error" in cond["message"] and "thresholds held" in cond["message"]
    assert cluster.condition(namespace, "badq", "Ready")["status"] == "True"  # type: ignore[index]
    basis = cr["status"]["adaptation"]["basis"]
    assert cr["status"]["effective"]["minTokensPerSecond"] == basis["computedMinTokensPerSecond"]
    cluster.await_event(namespace, "badq", "AdaptationFailed")


def test_adaptation_tightens_holds_on_regression_survives_restart_and_outage(
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus: PrometheusServer,
    exporter: VllmExporter,
    namespace: str,
    pool: str,
) -> None:
    name = "adapt"
    cluster.create_cr(namespace, name, _spec(pool, {"prometheus": {"url": prometheus.url}}))
    cluster.await_condition(namespace, name, generation=1)
    basis = eventually(
        lambda: _adaptation(cluster, namespace, name).get("basis") or None, what="basis"
    )
    expected, computed = basis["expectedDecodeTokensPerSecond"], basis["computedMinTokensPerSecond"]
    ttft_expected = basis["expectedTimeToFirstTokenMs"]
    ttft_computed = basis["computedMaxTimeToFirstTokenMs"]
    assert 0 < computed < expected and 0 < ttft_expected < ttft_computed

    # 1. Sustained better-than-expected performance: 1.6x the physical expectation for
    #    decode, a third of the expected TTFT. Thresholds tighten step by step.
    exporter.set(decode_tps=1.6 * expected, ttft_seconds=ttft_expected / 3 / 1000)
    seen: list[float] = [computed]
    ttft_seen: list[float] = [ttft_computed]

    def tightened() -> bool:
        st = _adaptation(cluster, namespace, name)
        value = (st.get("decode") or {}).get("threshold")
        ttft = (st.get("ttft") or {}).get("threshold")
        if value is not None and value != seen[-1]:
            seen.append(value)
        if ttft is not None and ttft != ttft_seen[-1]:
            ttft_seen.append(ttft)
        return seen[-1] >= computed * 1.25 and ttft_seen[-1] <= ttft_computed * 0.8

    try:
        eventually(tightened, timeout=120, what="thresholds tighten")
    except TimeoutError as exc:
        raise AssertionError(
            f"{exc}: seen {seen}, ttft {ttft_seen}, state {_adaptation(cluster, namespace, name)}"
        ) from None
    for old, new in itertools.pairwise(seen):
        assert old < new <= old * (1 + STEP) * (1 + 1e-9), f"step bound: {seen}"
        assert new <= expected * (1 + 1e-9), "never above the physical expectation"
    for old, new in itertools.pairwise(ttft_seen):
        assert old * (1 - STEP) * (1 - 1e-9) <= new < old, f"step bound: {ttft_seen}"
        assert new >= ttft_expected * (1 - 1e-9)

    st = _adaptation(cluster, namespace, name)
    print(  # figures for the record (pytest -s)
        f"\nexpected {expected:.4g} tok/s, computed {computed:.4g}; minTokensPerSecond moves "
        f"{[round(v, 4) for v in seen]} after {st['decode']['samples']} samples (confidence "
        f"{st['decode']['confidence']:.2f}); maxTimeToFirstTokenMs {[round(v) for v in ttft_seen]}"
    )
    assert st["decode"]["samples"] >= 3 and 0 < st["decode"]["confidence"] <= 1
    assert st["decode"]["mean"] == pytest.approx(1.6 * expected, rel=0.05)
    adapted = eventually(
        lambda: (
            cluster.cr(namespace, name)["status"]["effective"]["minTokensPerSecond"]
            if cluster.cr(namespace, name)["status"]["effective"]["minTokensPerSecond"] > computed
            else None
        ),
        what="effective thresholds adapted",
    )
    eventually(
        lambda: (
            float(
                cluster.cm(namespace, f"{name}-thresholds")["data"]["BITNET_MIN_TOKENS_PER_SECOND"]
            )
            > computed
        ),
        what="ConfigMap carries the adapted threshold",
    )
    assert adapted > computed
    event = cluster.await_event(namespace, name, "ThresholdAdapted")
    assert "minTokensPerSecond" in event["message"] or "maxTimeToFirstTokenMs" in event["message"]
    assert "confidence" in event["message"] and "observed" in event["message"]

    # 2. A sustained regression (0.3x expected, 3x the TTFT) must not lower anything.
    exporter.set(decode_tps=0.3 * expected, ttft_seconds=3 * ttft_expected / 1000)
    peak = _adaptation(cluster, namespace, name)
    samples_at_peak = peak["decode"]["samples"]
    held: list[tuple[float, float]] = []

    def regression_absorbed() -> bool:
        st = _adaptation(cluster, namespace, name)
        held.append((st["decode"]["threshold"], st["ttft"]["threshold"]))
        return (
            st["decode"]["samples"] >= samples_at_peak + 8
            and st["decode"]["lastValue"] < 0.5 * expected
            and st["decode"]["mean"] < peak["decode"]["mean"]
        )

    eventually(regression_absorbed, timeout=90, what="regression observed for 8+ intervals")
    # moves already under way when the regression began may finish; nothing goes down
    for (d0, t0), (d1, t1) in itertools.pairwise(held):
        assert d1 >= d0 and t1 <= t0, f"a threshold loosened during the regression: {held}"
    st = _adaptation(cluster, namespace, name)
    assert st["decode"]["threshold"] >= peak["decode"]["threshold"]
    assert st["reason"] in ("Holding", "Tightened") and st["healthy"] is True

    # 3. Operator restart: learned state comes back from status, nothing resets.
    before = _adaptation(cluster, namespace, name)
    operator.stop()
    operator.start()
    after_restart = eventually(
        lambda: (
            s
            if (s := _adaptation(cluster, namespace, name))["decode"]["samples"]
            > before["decode"]["samples"]
            else None
        ),
        timeout=60,
        what="sampling resumes after restart",
    )
    assert after_restart["decode"]["threshold"] >= before["decode"]["threshold"]
    assert after_restart["decode"]["firstSampleTime"] == before["decode"]["firstSampleTime"]

    # 4. Prometheus down: Adapted=False with the reason, thresholds held, operator alive.
    held_thresholds = _adaptation(cluster, namespace, name)["thresholds"]
    prometheus.stop()
    try:
        cr = cluster.await_condition(
            namespace, name, "Adapted", "False", reason="PrometheusUnreachable", timeout=60
        )
        assert cr["status"]["adaptation"]["thresholds"] == held_thresholds
        assert cr["status"]["effective"]["minTokensPerSecond"] == pytest.approx(
            held_thresholds["minTokensPerSecond"]
        )
        assert cluster.condition(namespace, name, "Ready")["status"] == "True"  # type: ignore[index]
        event = cluster.await_event(namespace, name, "AdaptationFailed")
        assert "PrometheusUnreachable" in event["message"]
        assert operator.alive()
        assert (
            operator.metric(
                "inference_thresholds_adaptation_healthy", namespace=namespace, name=name
            )
            == 0.0
        )
    finally:
        prometheus.start()
    cluster.await_condition(namespace, name, "Adapted", "True", timeout=60)
    cluster.await_event(namespace, name, "AdaptationResumed")
    ratio = operator.metric(
        "inference_thresholds_observed_to_expected_ratio",
        namespace=namespace, name=name, signal="decode",
    )  # fmt: skip
    assert ratio is not None and ratio > 0


MONITORING_CRDS = Path(__file__).parents[1] / "fixtures" / "helm" / "monitoring-crds.yaml"


@pytest.fixture(scope="module")
def prometheus_rule_crd(kube: ClusterAccess) -> Iterator[None]:
    """The chart tests' stand-in prometheus-operator CRDs (see that file's header)."""
    kube.kubectl("apply", "--server-side", "-f", str(MONITORING_CRDS))
    eventually(
        lambda: kube.kubectl(
            "get", "crd", "prometheusrules.monitoring.coreos.com", "-o",
            "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False,
        ).stdout == "True",
        timeout=60, what="PrometheusRule CRD established",
    )  # fmt: skip
    eventually(
        lambda: kube.kubectl("get", "prometheusrules", "-A", check=False).returncode == 0,
        timeout=30,
        what="prometheusrules served",
    )
    yield
    kube.kubectl("delete", "--ignore-not-found", "--wait=false", "-f", str(MONITORING_CRDS))


def _rule(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: Any = cluster.custom.get_namespaced_custom_object(
            "monitoring.coreos.com", "v1", namespace, "prometheusrules", name
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return dict(found)


def test_prometheus_rule_is_generated_owned_valid_and_removed(
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus_rule_crd: None,
    namespace: str,
    pool: str,
    tmp_path: Path,
) -> None:
    # alert rules without adaptation: no Prometheus needed by the operator
    spec = _spec(
        pool, {"enabled": False, "alertRules": {"enabled": True, "labels": {"release": "kp"}}}
    )
    cr = cluster.create_cr(namespace, "alerts", spec)
    rule = eventually(lambda: _rule(cluster, namespace, "alerts-thresholds"), what="PrometheusRule")
    meta = rule["metadata"]
    assert meta["labels"]["release"] == "kp"
    assert meta["labels"]["thresholds.inference.dev/owner"] == "alerts"
    assert meta["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
    alerts = {r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]} - {None}
    assert alerts == {"InferenceDecodeTooSlow", "InferenceTimeToFirstTokenTooHigh"}
    # what the apiserver stored is a valid Prometheus rules file
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    assert promtool, "promtool not found: apt-get install prometheus (see .ci/run)"
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    cluster.await_event(namespace, "alerts", "PrometheusRuleWritten")
    assert cluster.condition(namespace, "alerts", "Adapted") is None  # adaptation is off

    # switching to llama.cpp metrics drops the TTFT alert (no histograms there)
    cluster.patch_spec(namespace, "alerts", {"adaptation": {"source": "llama-cpp-server"}})

    def ttft_dropped() -> bool:
        got = _rule(cluster, namespace, "alerts-thresholds") or {"spec": {"groups": []}}
        names = {r.get("alert") for g in got["spec"]["groups"] for r in g["rules"]}
        return names == {None, "InferenceDecodeTooSlow"}

    eventually(ttft_dropped, timeout=30, what="rule regenerated for llama.cpp")

    # a same-named rule owned by someone else is reported, never overwritten
    foreign = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "other-thresholds"},
        "spec": {"groups": [{"name": "mine", "rules": [{"record": "x", "expr": "1"}]}]},
    }
    cluster.custom.create_namespaced_custom_object(
        "monitoring.coreos.com", "v1", namespace, "prometheusrules", foreign
    )
    cluster.create_cr(namespace, "other", spec)
    event = cluster.await_event(namespace, "other", "PrometheusRuleConflict")
    assert "not owned" in event["message"]
    assert _rule(cluster, namespace, "other-thresholds")["spec"]["groups"][0]["name"] == "mine"  # type: ignore[index]

    # switched off: the rule goes away
    cluster.patch_spec(namespace, "alerts", {"adaptation": {"alertRules": {"enabled": False}}})
    eventually(
        lambda: _rule(cluster, namespace, "alerts-thresholds") is None,
        timeout=30,
        what="PrometheusRule deleted when alertRules is switched off",
    )
