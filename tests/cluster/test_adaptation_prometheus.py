"""Runtime adaptation end to end: the operator, a real Prometheus, vLLM-style exporters.

Shows: thresholds move toward sustained better-than-expected performance, each move
within maxStepPercent and never past the physical expectation; the ConfigMap follows;
a sustained regression does not lower them; state survives an operator restart;
Prometheus down or a bad query -> Adapted=False with the reason, thresholds held. With
history in Prometheus (backfilled TSDB blocks, old and new vLLM metric names) a new
resource recommends within its first interval, and mode Recommend never writes the
ConfigMap (a watch sees every write). Per-class adaptation from series that carry the
node. MetricNotFound vs NoData from the series endpoint; the operator's default
Prometheus URL.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import watch
from kubernetes.client import ApiException
from operator_harness import Cluster, OperatorProcess, eventually, nodes, unique
from prometheus_harness import (
    MODEL,
    NEW_ITL,
    OLD_ITL,
    SGLANG_ITL,
    SGLANG_TTFT,
    TTFT,
    PrometheusServer,
    VllmExporter,
    backfill,
)

from inference_thresholds.adaptation.prometheus import PrometheusClient
from inference_thresholds.api.thresholds_document import ThresholdsDocument
from inference_thresholds_dev.cluster.access import ClusterAccess

pytestmark = pytest.mark.prometheus

LLAMA = {"preset": "llama-3.1-8b"}
STEP = 0.10
IDLE_MODEL = "idle-model"


@pytest.fixture(scope="module")
def exporter() -> Iterator[VllmExporter]:
    e = VllmExporter()
    yield e
    e.close()


@pytest.fixture(scope="module")
def idle_exporter() -> Iterator[VllmExporter]:
    """A deployment that exists but serves nothing (series present, no samples move)."""
    e = VllmExporter(IDLE_MODEL)
    yield e
    e.close()


@pytest.fixture(scope="module")
def prometheus(
    exporter: VllmExporter, idle_exporter: VllmExporter, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    server = PrometheusServer(
        tmp_path_factory.mktemp("prometheus"), [exporter.target, idle_exporter.target]
    )
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
            "history": "0s",
            **adaptation,
        },
    }


def _adaptation(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict((cluster.cr(namespace, name).get("status") or {}).get("adaptation") or {})


def _entry(cluster: Cluster, namespace: str, name: str, cls: str | None = None) -> dict[str, Any]:
    """The learned state of one class (the first, the effective one, when not named)."""
    classes = _adaptation(cluster, namespace, name).get("classes") or [{}]
    if cls is None:
        return dict(classes[0])
    return dict(next((c for c in classes if c.get("name") == cls), {}))


def _expected(cluster: Cluster, namespace: str, pool: str) -> dict[str, dict[str, float]]:
    """The engine's expectation per class for the pool, from a probe resource."""
    probe = unique("probe")
    cluster.create_cr(namespace, probe, {
        "nodeSelector": {"matchLabels": {"test.inference.dev/pool": pool}}, "model": LLAMA,
    })  # fmt: skip
    cr = cluster.await_condition(namespace, probe, generation=1)
    cluster.delete_cr(namespace, probe)
    return {c["name"]: c["expected"] for c in cr["status"]["classes"]}


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
    basis = cr["status"]["adaptation"]["classes"][0]["basis"]
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
    basis = eventually(lambda: _entry(cluster, namespace, name).get("basis"), what="basis")
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
        st = _entry(cluster, namespace, name)
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
            f"{exc}: seen {seen}, ttft {ttft_seen}, state {_entry(cluster, namespace, name)}"
        ) from None
    for old, new in itertools.pairwise(seen):
        assert old < new <= old * (1 + STEP) * (1 + 1e-9), f"step bound: {seen}"
        assert new <= expected * (1 + 1e-9), "never above the physical expectation"
    for old, new in itertools.pairwise(ttft_seen):
        assert old * (1 - STEP) * (1 - 1e-9) <= new < old, f"step bound: {ttft_seen}"
        assert new >= ttft_expected * (1 - 1e-9)

    st = _entry(cluster, namespace, name)
    print(  # figures for the record (pytest -s)
        f"\nexpected {expected:.4g} tok/s, computed {computed:.4g}; minTokensPerSecond moves "
        f"{[round(v, 4) for v in seen]} after {st['decode']['samples']} samples (confidence "
        f"{st['decode']['confidence']:.2f}); maxTimeToFirstTokenMs {[round(v) for v in ttft_seen]}"
    )
    assert st["decode"]["samples"] >= 3 and 0 < st["decode"]["confidence"] <= 1
    # the median of the decayed history, on the exporter's 25 %-wide buckets
    assert st["decode"]["observed"] == pytest.approx(1.6 * expected, rel=0.25)
    # one interval's quantile as the real Prometheus' histogram_quantile reads it
    window_ttft = PrometheusClient(prometheus.url).query_value(
        'histogram_quantile(0.9, sum by (le) (rate({__name__=~"vllm[:_]time_to_first_token_'
        f'seconds_bucket",model_name="{MODEL}"}}[10s])))'
    )
    assert window_ttft is not None
    assert st["ttft"]["lastValue"] == pytest.approx(window_ttft * 1000, rel=0.06)
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
    peak = _entry(cluster, namespace, name)
    samples_at_peak = peak["decode"]["samples"]
    held: list[tuple[float, float]] = []

    def regression_absorbed() -> bool:
        st = _entry(cluster, namespace, name)
        held.append((st["decode"]["threshold"], st["ttft"]["threshold"]))
        return (
            st["decode"]["samples"] >= samples_at_peak + 8
            and st["decode"]["lastValue"] < 0.5 * expected
            and st["decode"]["observed"] < peak["decode"]["observed"]
        )

    eventually(regression_absorbed, timeout=90, what="regression observed for 8+ intervals")
    # moves already under way when the regression began may finish; nothing goes down
    for (d0, t0), (d1, t1) in itertools.pairwise(held):
        assert d1 >= d0 and t1 <= t0, f"a threshold loosened during the regression: {held}"
    st = _entry(cluster, namespace, name)
    assert st["decode"]["threshold"] >= peak["decode"]["threshold"]
    overall = _adaptation(cluster, namespace, name)
    assert overall["reason"] in ("Holding", "Tightened") and overall["healthy"] is True

    # 3. Operator restart: learned state comes back from status, nothing resets.
    before = _entry(cluster, namespace, name)
    operator.stop()
    operator.start()
    after_restart = eventually(
        lambda: (
            s
            if (s := _entry(cluster, namespace, name))["decode"]["samples"]
            > before["decode"]["samples"]
            else None
        ),
        timeout=60,
        what="sampling resumes after restart",
    )
    assert after_restart["decode"]["threshold"] >= before["decode"]["threshold"]
    assert after_restart["decode"]["firstSampleTime"] == before["decode"]["firstSampleTime"]

    # 4. Prometheus down: Adapted=False with the reason, thresholds held, operator alive.
    held_thresholds = _entry(cluster, namespace, name)["thresholds"]
    prometheus.stop()
    try:
        cr = cluster.await_condition(
            namespace, name, "Adapted", "False", reason="PrometheusUnreachable", timeout=60
        )
        assert cr["status"]["adaptation"]["classes"][0]["thresholds"] == held_thresholds
        assert cr["status"]["effective"]["minTokensPerSecond"] == pytest.approx(
            held_thresholds["minTokensPerSecond"]
        )
        assert cluster.condition(namespace, name, "Ready")["status"] == "True"  # type: ignore[index]
        eventually(
            lambda: any(
                e.get("reason") == "AdaptationFailed" and "PrometheusUnreachable" in e["message"]
                for e in cluster.events(namespace, name)
            ),
            what="AdaptationFailed Event for the outage",
        )
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
        namespace=namespace, name=name, signal="decode", **{"class": st["name"]},
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


# --- history at creation, mode Recommend ------------------------------------------------


class ConfigMapWrites:
    """Every watch event of the ConfigMaps in a namespace, from before the test's writes."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.events: list[tuple[str, str, str]] = []  # (type, name, resourceVersion)
        self._stopped = False
        self.failure: Exception | None = None
        self._watch = watch.Watch()
        start = cluster.core.list_namespaced_config_map(namespace).metadata.resource_version
        self._thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self._thread.start()

    def _run(self, resource_version: str) -> None:
        try:
            for event in self._watch.stream(
                self.cluster.core.list_namespaced_config_map,
                self.namespace,
                resource_version=resource_version,
                timeout_seconds=600,
            ):
                obj = event["object"]
                self.events.append(
                    (event["type"], obj.metadata.name, obj.metadata.resource_version)
                )
        except Exception as exc:  # the connection closes under stop(); record anything else
            if not self._stopped:
                self.failure = exc

    def of(self, name: str) -> list[str]:
        return [t for t, n, _ in self.events if n == name]

    def settle(self) -> None:
        """Await the watch reaching now: a marker written last must come through."""
        marker = unique("marker")
        self.cluster.core.create_namespaced_config_map(
            self.namespace, {"metadata": {"name": marker}}
        )
        eventually(lambda: self.of(marker), timeout=30, what="watch caught up")
        assert self.failure is None, f"the ConfigMap watch broke: {self.failure}"

    def close(self) -> None:
        self._stopped = True
        self._watch.stop()


def test_history_recommends_within_one_interval_and_recommend_never_writes_the_configmap(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str, tmp_path: Path
) -> None:
    """Half an hour of history in Prometheus before the resources exist (old vLLM names
    for one model, new names for another, SGLang's for a third): each recommends from its
    first query."""
    (expected,) = _expected(cluster, namespace, pool).values()
    tps, ttft_ms = expected["decodeTokensPerSecond"], expected["timeToFirstTokenMs"]
    history = tmp_path / "prometheus"
    history.mkdir()
    fast, quick = 1.6 * tps, ttft_ms / 3 / 1000
    pods = {"old-vllm": (OLD_ITL, TTFT, fast, quick), "new-vllm": (NEW_ITL, TTFT, fast, quick),
            "sglang": (SGLANG_ITL, SGLANG_TTFT, fast, quick)}  # fmt: skip
    sources = {"old-vllm": "vllm", "new-vllm": "vllm", "sglang": "sglang"}
    backfill(history / "data", history, pods, span_s=1800, step_s=15)
    server = PrometheusServer(history)
    server.start()
    writes = ConfigMapWrites(cluster, namespace)
    interval = 60.0
    try:
        created: dict[str, float] = {}
        for model in pods:
            spec = _spec(pool, {
                "prometheus": {"url": server.url}, "mode": "Recommend", "source": sources[model],
                "labelMatchers": [{"label": "model_name", "value": model}],
                "interval": "60s", "window": "1m", "halfLife": "1h", "history": "30m",
                "minSamples": 10, "maxStepPercent": 5,
            })  # fmt: skip
            created[model] = time.monotonic()
            cluster.create_cr(namespace, model, spec)
        for model, began in created.items():
            event = cluster.await_event(namespace, model, "ThresholdRecommended", timeout=interval)
            took = time.monotonic() - began
            assert took < interval, f"{model}: first recommendation after {took:.1f} s"
            # the status write follows the Event (the reconcile the interval triggers)
            entry = eventually(
                lambda model=model: e if (e := _entry(cluster, namespace, model)).get(
                    "seeded") else None,
                what=f"{model}: seeded state in status",
            )  # fmt: skip
            basis = entry["basis"]
            # 30 min of history at the 60 s interval: 29 points, then the first interval
            assert entry["seeded"] and entry["decode"]["samples"] >= 25, entry["decode"]
            assert entry["decode"]["threshold"] > basis["computedMinTokensPerSecond"] * 1.05**3
            assert entry["ttft"]["threshold"] < basis["computedMaxTimeToFirstTokenMs"] * 0.95**3
            assert "from history of" in event["message"]
            cluster.await_event(namespace, model, "AdaptationSeeded")
            cr = cluster.await_condition(namespace, model, "Adapted", "True")
            assert next(c for c in cr["status"]["conditions"] if c["type"] == "Adapted")[
                "reason"
            ] in ("Recommended", "Holding", "Learning", "NoData")
            # mode Recommend: what pods get is still computed
            assert cr["status"]["effective"]["minTokensPerSecond"] == pytest.approx(
                basis["computedMinTokensPerSecond"]
            )
            data = cluster.cm(namespace, f"{model}-thresholds")["data"]
            assert float(data["BITNET_MIN_TOKENS_PER_SECOND"]) == pytest.approx(
                basis["computedMinTokensPerSecond"], rel=1e-3
            )
            d, t = entry["decode"], entry["ttft"]
            print(  # figures for the record (pytest -s)
                f"\n{model}: recommended after {took:.1f} s from {d['samples']} samples: "
                f"minTokensPerSecond {basis['computedMinTokensPerSecond']:.4g} -> "
                f"{d['threshold']:.4g}, maxTimeToFirstTokenMs "
                f"{basis['computedMaxTimeToFirstTokenMs']:.4g} -> {t['threshold']:.4g}"
            )
        writes.settle()
        for model in pods:
            assert writes.of(f"{model}-thresholds") == ["ADDED"], writes.events  # never updated

        # Apply: the same learned values reach the ConfigMap (one write), with an Event
        cluster.patch_spec(namespace, "new-vllm", {"adaptation": {"mode": "Apply"}})
        learned = _entry(cluster, namespace, "new-vllm")["decode"]["threshold"]
        eventually(
            lambda: float(cluster.cm(namespace, "new-vllm-thresholds")["data"][
                "BITNET_MIN_TOKENS_PER_SECOND"]) == pytest.approx(learned, rel=1e-3),
            timeout=30, what="learned threshold in the ConfigMap after mode Apply",
        )  # fmt: skip
        cluster.await_event(namespace, "new-vllm", "AdaptationModeChanged")
        writes.settle()
        assert writes.of("new-vllm-thresholds")[:2] == ["ADDED", "MODIFIED"]
        assert writes.of("old-vllm-thresholds") == ["ADDED"]
    finally:
        writes.close()
        server.stop()


# --- per class, MetricNotFound vs NoData, the default Prometheus ------------------------


def test_each_class_adapts_from_its_own_nodes_series(
    cluster: Cluster, operator: OperatorProcess, namespace: str, tmp_path: Path
) -> None:
    pool = unique("classes")
    small, big = f"{pool}-small", f"{pool}-big"
    labels = {"test.inference.dev/pool": pool}
    with nodes(cluster, [(small, labels, {"cpu": "8", "memory": "32Gi"}),
                         (big, labels, {"cpu": "64", "memory": "256Gi"})]):  # fmt: skip
        expected = _expected(cluster, namespace, pool)
        assert len(expected) == 2, "two hardware classes"
        record = _spec(pool, {})  # to learn each class's node from its status
        cluster.create_cr(
            namespace, "nodes-of", {k: v for k, v in record.items() if k != "adaptation"}
        )
        cluster.await_condition(namespace, "nodes-of", generation=1)
        doc = cluster.document(namespace, "nodes-of-thresholds")
        class_of = ThresholdsDocument.model_validate(doc).node_classes()
        exporters = {node: VllmExporter("per-class") for node in (small, big)}
        factor = {small: 1.6, big: 1.25}
        for node, e in exporters.items():
            e.set(decode_tps=factor[node] * expected[class_of[node]]["decodeTokensPerSecond"])
        server = PrometheusServer(tmp_path, {e.target: {"node": n} for n, e in exporters.items()})
        server.start()
        try:
            spec = _spec(pool, {
                "prometheus": {"url": server.url}, "nodeLabel": "node",
                "labelMatchers": [{"label": "model_name", "value": "per-class"}],
            })  # fmt: skip
            cluster.create_cr(namespace, "per-class", spec)

            def learned() -> dict[str, dict[str, Any]] | None:
                classes = _adaptation(cluster, namespace, "per-class").get("classes") or []
                ready = {c["name"]: c for c in classes if c["decode"].get("samples", 0) >= 5}
                return ready if len(ready) == 2 else None

            got = eventually(learned, timeout=90, what="both classes learning")
            for node in (small, big):
                entry = got[class_of[node]]
                observed = entry["decode"]["observed"]
                want = factor[node] * expected[class_of[node]]["decodeTokensPerSecond"]
                assert observed == pytest.approx(want, rel=0.25), (node, entry["decode"])
                assert f'node=~"{node}"' in entry["decode"]["query"]
                print(f"\n{node} ({class_of[node]}): serving {want:.4g} tok/s, observed "
                      f"{observed:.4g} after {entry['decode']['samples']} samples")  # fmt: skip

            # each class's own observation drives its own threshold in the document
            def moved() -> bool:
                doc = cluster.document(namespace, "per-class-thresholds")
                return all(
                    doc["classes"][c]["thresholds"]["minTokensPerSecond"]
                    > _entry(cluster, namespace, "per-class", c)["basis"][
                        "computedMinTokensPerSecond"]
                    for c in expected
                )  # fmt: skip

            eventually(moved, timeout=90, what="every class's threshold tightened")
        finally:
            server.stop()
            for e in exporters.values():
                e.close()


def test_metric_not_found_no_data_and_the_default_prometheus(
    kube: ClusterAccess,
    cluster: Cluster,
    operator: OperatorProcess,
    prometheus: PrometheusServer,
    namespace: str,
    pool: str,
    tmp_path: Path,
) -> None:
    # no Prometheus in the spec and none configured in the operator
    cluster.create_cr(namespace, "nowhere", _spec(pool, {}))
    cr = cluster.await_condition(
        namespace, "nowhere", "Adapted", "False", reason="PrometheusNotConfigured"
    )
    cond = next(c for c in cr["status"]["conditions"] if c["type"] == "Adapted")
    assert "operator.prometheus.url" in cond["message"]
    cluster.delete_cr(namespace, "nowhere")

    defaulted = OperatorProcess(
        kube, tmp_path, env={"INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL": prometheus.url}
    )
    operator.stop()  # one operator per namespace at a time
    defaulted.start()
    try:
        # SGLang metrics do not exist in this Prometheus at all
        cluster.create_cr(namespace, "missing", _spec(pool, {"source": "sglang"}))
        cr = cluster.await_condition(namespace, "missing", "Adapted", "False",
                                     reason="MetricNotFound")  # fmt: skip
        cond = next(c for c in cr["status"]["conditions"] if c["type"] == "Adapted")
        assert "sglang:inter_token_latency_seconds_count" in cond["message"]
        assert "adaptation.source" in cond["message"]
        # vLLM metrics of an idle deployment exist: no data now, nothing wrong
        idle = _spec(pool, {"labelMatchers": [{"label": "model_name", "value": IDLE_MODEL}]})
        cluster.create_cr(namespace, "idle", idle)
        cr = cluster.await_condition(namespace, "idle", "Adapted", "True", reason="NoData")
        assert cr["status"]["adaptation"]["healthy"] is True
    finally:
        defaulted.stop()
        operator.start()
