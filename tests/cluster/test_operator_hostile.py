"""Hostile inputs and faults against the real apiserver and the real operator process: nothing
one object does may stop the operator (issue 15).

Each test is a regression for a failure reproduced in issue 15 (its case number in the
docstring) or one more hostile input of the same kind. The misbehaving Prometheus is
``inference_thresholds_dev.hostile_prometheus``, a real HTTP server on 127.0.0.1; figures
are printed for the record (``pytest -s``) and gathered by benchmarks/hostile_inputs.py.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client import ApiException
from operator_harness import Cluster, OperatorProcess, eventually, nodes, unique

from inference_thresholds.controller.configmap import data_hash
from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.hostile_prometheus import HostilePrometheus, adaptation

POOL = "test.inference.dev/pool"
PROFILE = "hw.inference.dev/profile"
LLAMA = {"preset": "llama-3.1-8b"}
NESTED = "[" * 60_000  # valid size for an annotation, pathological for a recursive parser
CHART_MEMORY_LIMIT_MIB = 384


@pytest.fixture(scope="module")
def prom() -> Iterator[HostilePrometheus]:
    with HostilePrometheus() as server:
        yield server


@pytest.fixture(scope="module")
def pool(cluster: Cluster) -> Iterator[str]:
    name = unique("hostile")
    with nodes(cluster, [(f"{name}-cpu", {POOL: name}, {})]):
        yield name


def _spec(pool: str, **extra: Any) -> dict[str, Any]:
    return {"nodeSelector": {"matchLabels": {POOL: pool}}, "model": LLAMA, **extra}


def _adaptive(pool: str, url: str, timeout: str = "3s") -> dict[str, Any]:
    return _spec(pool, adaptation=adaptation(url, timeout))


def _node_events(cluster: Cluster, node: str) -> list[dict[str, Any]]:
    items = cluster.core.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={node}"
    ).items
    return [cluster.api.sanitize_for_serialization(e) for e in items]


def _await_node_event(cluster: Cluster, node: str, needle: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        return next(
            (
                e
                for e in _node_events(cluster, node)
                if e["reason"] == "NodeHardwareRejected" and needle in e["message"]
            ),
            None,
        )

    return eventually(check, what=f"NodeHardwareRejected on {node} ({needle})")


def _timed(action: Any, check: Any, what: str, timeout: float = 60) -> float:
    started = time.monotonic()
    action()
    eventually(check, timeout=timeout, what=what)
    return time.monotonic() - started


# --- case 1: one Node blocks startup cluster-wide ---------------------------------------------


def test_bad_nodes_neither_stop_a_start_nor_go_unreported(
    kube: ClusterAccess, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    """Issue 15 case 1: nested profile JSON or ``cpu: 9e999`` on one Node failed the node
    listing; the startup retried every 60 s, failing on the metrics port each time."""
    pool = unique("badnodes")
    nested, huge = f"{pool}-nested", f"{pool}-huge-cpu"
    specs = [
        (nested, {POOL: pool}, {"annotations": {PROFILE: NESTED}}),
        (huge, {POOL: pool}, {"cpu": "9e999"}),
        (f"{pool}-good", {POOL: f"{pool}-good"}, {}),
    ]
    with nodes(cluster, specs):
        op = OperatorProcess(kube, tmp_path)
        try:
            op.start()  # healthy within 60 s (never, before)
            cluster.create_cr(namespace, "good", _spec(f"{pool}-good"))
            cluster.create_cr(namespace, "bad", _spec(pool))
            cluster.await_condition(namespace, "good", generation=1)
            cr = cluster.await_condition(namespace, "bad", generation=1)
            assert cr["status"]["nodesMatched"] == 2
            assert {c["hardwareSource"] for c in cr["status"]["classes"]} == {"capacity"}
            _await_node_event(cluster, nested, "nests deeper than 8 levels")
            _await_node_event(cluster, huge, "status.allocatable.cpu '9e999'")
            log = op.log_path.read_text()
            assert f"node {nested}:" in log and f"node {huge}:" in log
        finally:
            op.stop()


def test_a_node_turning_hostile_while_running_is_read_again(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Issue 15 case 1, running: the node kept its stale hardware (the parser raised)."""
    pool = unique("turns")
    node = f"{pool}-n"
    profile = {"cpu": {"model": "AMD EPYC 9654", "physicalCores": 96, "usableCores": 96}}
    with nodes(cluster, [(node, {POOL: pool}, {"annotations": {PROFILE: json.dumps(profile)}})]):
        cluster.create_cr(namespace, "turns", _spec(pool))
        cr = cluster.await_condition(namespace, "turns", generation=1)
        assert cr["status"]["classes"][0]["hardwareSource"].startswith("agent")
        cluster.core.patch_node(node, {"metadata": {"annotations": {PROFILE: NESTED}}})

        def re_read() -> bool:
            classes = cluster.cr(namespace, "turns")["status"]["classes"]
            return bool(classes) and classes[0]["hardwareSource"] == "capacity"

        eventually(re_read, what="class re-read from the node's capacity")
        _await_node_event(cluster, node, "nests deeper")
        assert operator.healthy()


def _kubeconfig_with_token(kube: ClusterAccess, token: str, path: Path) -> Path:
    config = yaml.safe_load(kube.kubeconfig.read_text())
    for user in config["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(config))
    return path


_OPERATOR_RULES_BUT_NODES = [
    {
        "apiGroups": ["thresholds.inference.dev"],
        "resources": [
            "inferencethresholds",
            "inferencethresholds/status",
            "inferencethresholds/finalizers",
        ],
        "verbs": ["get", "list", "watch", "patch", "update"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "verbs": ["get", "list", "watch", "create", "update", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
]


def test_a_failed_start_releases_its_port_and_the_retry_starts(
    kube: ClusterAccess, cluster: Cluster, tmp_path: Path
) -> None:
    """Issue 15 case 1: a failed startup step left the metrics port bound, so every retry
    failed with "Address already in use" even once the cause was gone."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    with kube.temporary_namespace("opsa") as ns:
        cluster.core.create_namespaced_service_account(ns, {"metadata": {"name": "op"}})
        roles = {f"{ns}-base": _OPERATOR_RULES_BUT_NODES}
        nodes_role = {f"{ns}-nodes": [{"apiGroups": [""], "resources": ["nodes"],
                                       "verbs": ["get", "list", "watch"]}]}  # fmt: skip
        subject = [{"kind": "ServiceAccount", "name": "op", "namespace": ns}]

        def grant(grants: dict[str, list[dict[str, Any]]]) -> None:
            for name, rules in grants.items():
                rbac.create_cluster_role({"metadata": {"name": name}, "rules": rules})
                rbac.create_cluster_role_binding(
                    {
                        "metadata": {"name": name},
                        "roleRef": {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "ClusterRole",
                            "name": name,
                        },
                        "subjects": subject,
                    }
                )

        try:
            grant(roles)
            token = kube.service_account_token(ns, "op")
            config = _kubeconfig_with_token(kube, token, tmp_path / "op.kubeconfig")
            op = OperatorProcess(kube, tmp_path, kubeconfig=config)
            op.start(wait=False)
            try:
                eventually(
                    lambda: op.log_path.read_text().count("listing Nodes failed") >= 2,
                    timeout=60,
                    what="two failed node listings (403)",
                )
                assert op.healthz() is None  # not started: nothing serves /healthz yet
                grant(nodes_role)
                eventually(op.healthy, timeout=60, what="started once nodes may be listed")
                assert "Address already in use" not in op.log_path.read_text()
                assert (
                    op.metric("inference_thresholds_resources", condition="Ready", status="True")
                    is not None
                )
            finally:
                op.stop()
        finally:
            for name in (*roles, *nodes_role):
                for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
                    with contextlib.suppress(ApiException):
                        delete(name)


# --- cases 2-4: a Prometheus that is slow, huge or lies ------------------------------------


def test_a_slow_prometheus_delays_no_other_cr_beyond_its_deadline(
    cluster: Cluster,
    operator: OperatorProcess,
    prom: HostilePrometheus,
    namespace: str,
    pool: str,
) -> None:
    """Issue 15 case 2: the timeout applied per read (1 byte/s never timed out); six such
    CRs filled the thread pool reconciles use, and every other reconcile waited 142 s."""
    deadline = 5.0
    slow = 8  # more than the default thread pool of a 2-core machine (6)
    cluster.create_cr(namespace, "other", _spec(pool))
    cluster.await_condition(namespace, "other", generation=1)
    already = len(prom.requests("dribble"))
    for i in range(slow):
        cluster.create_cr(namespace, f"slow-{i}", _adaptive(pool, prom.url("dribble"), "5s"))
    for i in range(slow):
        cluster.await_condition(
            namespace, f"slow-{i}", "Adapted", "False", reason="PrometheusTimeout", timeout=90
        )
    eventually(
        lambda: len(prom.requests("dribble")) >= already + slow, timeout=90, what="dribbles cut"
    )

    def ready_now(name: str, generation: int) -> Any:
        def check() -> bool:
            cr = cluster.get_cr(namespace, name) or {}
            st = cr.get("status") or {}
            return st.get("observedGeneration") == generation and any(
                c["type"] == "Ready" and c["status"] == "True" for c in st.get("conditions") or []
            )

        return check

    created = _timed(
        lambda: cluster.create_cr(namespace, "newcomer", _spec(pool)),
        ready_now("newcomer", 1),
        "new CR reconciled",
    )
    changed = _timed(
        lambda: cluster.patch_spec(namespace, "other", {"context": {"environment": "staging"}}),
        ready_now("other", 2),
        "spec change reconciled",
    )
    restored = _timed(
        lambda: cluster.core.delete_namespaced_config_map("other-thresholds", namespace),
        lambda: cluster.configmap(namespace, "other-thresholds"),
        "deleted ConfigMap restored",
    )
    held = [s.seconds for s in prom.requests("dribble")]
    print(
        f"\n{slow} CRs on a 1 byte/s Prometheus (deadline {deadline:g} s): new CR ready in "
        f"{created:.2f} s, spec change in {changed:.2f} s, deleted ConfigMap back in "
        f"{restored:.2f} s; each dribble held {min(held):.1f}-{max(held):.1f} s"
    )
    assert max(created, changed, restored) <= deadline
    assert max(held) <= deadline + 1.5
    assert operator.healthy()


def test_a_huge_prometheus_answer_keeps_the_operator_within_its_memory_limit(
    cluster: Cluster,
    operator: OperatorProcess,
    prom: HostilePrometheus,
    namespace: str,
    pool: str,
) -> None:
    """Issue 15 case 3: a 400 MB body took the operator from 130 MB to 2.8 GB."""
    for mode in ("huge", "huge-declared"):
        cluster.create_cr(namespace, mode, _adaptive(pool, prom.url(mode), "10s"))
    for mode in ("huge", "huge-declared"):
        cr = cluster.await_condition(
            namespace, mode, "Adapted", "False", reason="ResponseTooLarge", timeout=60
        )
        cond = next(c for c in cr["status"]["conditions"] if c["type"] == "Adapted")
        assert "answer larger than 4,194,304 bytes" in cond["message"]
    eventually(
        lambda: min(len(prom.requests(m)) for m in ("huge", "huge-declared")) >= 5,
        timeout=60,
        what="five huge answers each",
    )
    rss, peak = operator.memory_mib()
    sent = max(s.bytes_sent for s in prom.requests("huge"))
    print(
        f"\nhuge answers ({sent / 1e6:.0f} MB offered): operator RSS {rss:.0f} MiB, peak {peak:.0f}"
    )
    assert peak < CHART_MEMORY_LIMIT_MIB


def test_impossible_samples_are_refused_and_status_stays_writable(
    cluster: Cluster,
    operator: OperatorProcess,
    prom: HostilePrometheus,
    namespace: str,
    pool: str,
) -> None:
    """Issue 15 case 4: 1e308 overflowed the learned state to NaN and every status patch
    then failed; negative samples were learned and tightened thresholds."""
    values = {"overflow": "1e308", "negative": "-5", "beyond-physics": "1e7"}
    for name, value in values.items():
        cluster.create_cr(namespace, name, _adaptive(pool, prom.url(f"value/{value}")))
    for name in values:
        cr = cluster.await_condition(
            namespace, name, "Adapted", "False", reason="ImplausibleSample", timeout=60
        )
        decode = cr["status"]["adaptation"]["classes"][0]["decode"]
        assert decode["samples"] == 0 and "observed" not in decode, "nothing learned"
        cluster.patch_spec(namespace, name, {"context": {"environment": "staging"}})
    for name in values:
        cluster.await_condition(namespace, name, generation=2)  # status patches go through
        assert "ReconcileError" not in cluster.event_reasons(namespace, name)
        cluster.await_event(namespace, name, "AdaptationFailed")


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("deep", "UnexpectedResponse"),
        ("types", "UnexpectedResponse"),
        ("html", "UnexpectedResponse"),
        ("series", "UnexpectedResponse"),
        ("redirect", "PrometheusUnreachable"),
        ("silent", "PrometheusTimeout"),
        ("dribble-headers", "PrometheusTimeout"),
    ],
)
def test_malformed_prometheus_answers_are_reported_on_their_cr(
    cluster: Cluster,
    operator: OperatorProcess,
    prom: HostilePrometheus,
    namespace: str,
    pool: str,
    mode: str,
    reason: str,
) -> None:
    cluster.create_cr(namespace, "odd", _adaptive(pool, prom.url(mode), "2s"))
    cr = cluster.await_condition(namespace, "odd", "Adapted", "False", reason=reason, timeout=60)
    assert cluster.condition(namespace, "odd", "Ready")["status"] == "True"  # type: ignore[index]
    assert cr["status"]["effective"]["minTokensPerSecond"] > 0, "computed thresholds held"
    assert operator.healthy()


# --- cases 5-6: ConfigMap ownership ---------------------------------------------------------


def _labelled_foreign(namespace: str, name: str, owner: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": "inference-thresholds",
                "thresholds.inference.dev/owner": owner,
            },
        },
        "data": {"user-key": "keep me"},
    }


def _reconciled_since_start(operator: OperatorProcess, namespace: str, *names: str) -> bool:
    # Per-CR gauges start empty in a new process and appear at each CR's first pass.
    return all(
        operator.metric("inference_thresholds_nodes_matched", namespace=namespace, name=n)
        is not None
        for n in names
    )


def test_a_foreign_configmap_carrying_our_labels_is_never_written(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 5: a foreign ConfigMap with the operator's labels was overwritten."""
    cluster.core.create_namespaced_config_map(
        namespace, _labelled_foreign(namespace, "squatted", "claimer")
    )
    version = cluster.cm(namespace, "squatted")["metadata"]["resourceVersion"]
    cluster.create_cr(namespace, "claimer", _spec(pool, configMap={"name": "squatted"}))
    cr = cluster.await_condition(
        namespace, "claimer", "Ready", "False", reason="ConfigMapConflict", generation=1
    )
    ready = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")
    assert "no controller ownerReference" in ready["message"]
    operator.stop()
    operator.start()
    eventually(lambda: _reconciled_since_start(operator, namespace, "claimer"), what="re-read")
    cm = cluster.cm(namespace, "squatted")
    assert cm["metadata"]["resourceVersion"] == version and cm["data"] == {"user-key": "keep me"}
    assert cluster.event_reasons(namespace, "claimer").count("ConfigMapConflict") == 1


def test_two_crs_naming_one_configmap_both_say_so_and_nothing_flips(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 5: after a restart race both stayed Ready=True while the data flipped."""
    cluster.create_cr(namespace, "first", _spec(pool, configMap={"name": "shared"}))
    cluster.await_condition(namespace, "first", generation=1)
    second = _spec(pool, configMap={"name": "shared"}, context={"environment": "development"})
    cluster.create_cr(namespace, "second", second)
    cluster.await_condition(
        namespace, "second", "ConfigMapSynced", "False", reason="ConfigMapConflict"
    )
    version = cluster.cm(namespace, "shared")["metadata"]["resourceVersion"]
    # The race of a restart: the second claims the ConfigMap in its status.
    cluster.custom.patch_namespaced_custom_object_status(
        "thresholds.inference.dev", "v1alpha1", namespace, "inferencethresholds", "second",
        {"status": {"configMapRef": {"name": "shared", "contentHash": "stale"}}},
    )  # fmt: skip
    operator.stop()
    operator.start()
    eventually(
        lambda: _reconciled_since_start(operator, namespace, "first", "second"), what="re-read"
    )
    cm = cluster.cm(namespace, "shared")
    assert cm["metadata"]["resourceVersion"] == version, "the ConfigMap was written again"
    assert json.loads(cm["data"]["thresholds.json"])["owner"] == "first"
    # Both say so: the one that cannot write it names the holder, the holder names it.
    second_status = cluster.await_condition(
        namespace, "second", "ConfigMapSynced", "False", reason="ConfigMapConflict"
    )["status"]
    synced = next(c for c in second_status["conditions"] if c["type"] == "ConfigMapSynced")
    assert "controlled by InferenceThresholds first" in synced["message"]
    assert cluster.condition(namespace, "second", "Ready")["status"] == "False"  # type: ignore[index]
    cluster.await_condition(namespace, "first", "ConfigMapSynced", "True", reason="NameShared")
    cluster.await_event(namespace, "first", "ConfigMapNameShared")
    # The holder goes: its ConfigMap is collected, and the other writes its own, promptly.
    cluster.delete_cr(namespace, "first")
    eventually(
        lambda: (
            json.loads((cluster.configmap(namespace, "shared") or {"data": {"thresholds.json":
                "{}"}})["data"]["thresholds.json"]).get("owner") == "second"
        ),
        timeout=30,
        what="the second writes the ConfigMap once the first is gone",
    )  # fmt: skip
    cluster.await_condition(namespace, "second", "Ready", "True")


def test_a_renamed_configmap_is_deleted(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 6: a renamed spec.configMap.name left the old one with stale data."""
    cluster.create_cr(namespace, "renamed", _spec(pool, configMap={"name": "before"}))
    cluster.await_condition(namespace, "renamed", generation=1)
    cluster.patch_spec(namespace, "renamed", {"configMap": {"name": "after"}})
    cluster.await_condition(namespace, "renamed", generation=2)
    eventually(lambda: cluster.configmap(namespace, "before") is None, what="old one deleted")
    assert cluster.cm(namespace, "after")["data"]["BITNET_MIN_TOKENS_PER_SECOND"]
    cluster.await_event(namespace, "renamed", "ConfigMapDeleted")


def test_tampering_is_repaired_promptly_not_at_the_resync(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 6: removed ownerReferences or a hand edit with a recomputed hash were
    repaired only at the periodic resync (600 s); a CR deleted before then orphaned its
    ConfigMap."""
    cluster.create_cr(namespace, "kept", _spec(pool))
    cr = cluster.await_condition(namespace, "kept", generation=1)
    uid = cr["metadata"]["uid"]
    name = "kept-thresholds"
    good = cluster.cm(namespace, name)["data"]

    def owned() -> bool:
        refs = (cluster.cm(namespace, name)["metadata"].get("ownerReferences")) or []
        return any(r["uid"] == uid and r.get("controller") for r in refs)

    times = {}
    times["ownerReferences removed"] = _timed(
        lambda: cluster.core.patch_namespaced_config_map(
            name, namespace, {"metadata": {"ownerReferences": None}}
        ),
        owned,
        "ownerReference restored",
        timeout=30,
    )
    edited = {**good, "BITNET_MIN_TOKENS_PER_SECOND": "0.001"}
    digest = data_hash(edited)
    times["hand edit, hash recomputed"] = _timed(
        lambda: cluster.core.patch_namespaced_config_map(
            name,
            namespace,
            {
                "data": edited,
                "metadata": {"annotations": {"thresholds.inference.dev/data-hash": digest}},
            },
        ),
        lambda: cluster.cm(namespace, name)["data"] == good,
        "hand edit repaired",
        timeout=30,
    )
    times["managed-by label removed"] = _timed(
        lambda: cluster.core.patch_namespaced_config_map(
            name, namespace, {"metadata": {"labels": {"app.kubernetes.io/managed-by": None}}}
        ),
        lambda: (
            cluster.cm(namespace, name)["metadata"]["labels"].get("app.kubernetes.io/managed-by")
            == "inference-thresholds"
        ),
        "label restored",
        timeout=30,
    )
    print("\nrepaired within: " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()))
    eventually(  # Events are posted just after each repair: await them
        lambda: cluster.event_reasons(namespace, "kept").count("ConfigMapRepaired") >= 3,
        what="three ConfigMapRepaired Events",
    )
    # Owned again: deleting the CR takes the ConfigMap with it (garbage collection).
    cluster.delete_cr(namespace, "kept")
    eventually(lambda: cluster.configmap(namespace, name) is None, timeout=60, what="collected")


# --- case 6: bounded strings and CRD bounds --------------------------------------------------


def test_oversized_node_strings_never_reach_status_or_configmap(
    cluster: Cluster, operator: OperatorProcess, namespace: str
) -> None:
    """Issue 15 case 6: a 100 KB GPU product name made the ConfigMap exceed 1 MiB (422)
    and the status 1.5 MB (500)."""
    pool = unique("strings")
    huge = {"gpus": [{"vendor": "nvidia", "product": "A" * 100_000, "count": 8}]}
    long = {"gpus": [{"vendor": "nvidia", "product": "B" * 5_000, "count": 8}]}
    specs = [
        (f"{pool}-huge", {POOL: pool}, {"annotations": {PROFILE: json.dumps(huge)}}),
        (f"{pool}-long", {POOL: pool}, {"annotations": {PROFILE: json.dumps(long)}}),
    ]
    with nodes(cluster, specs):
        cluster.create_cr(namespace, "strings", _spec(pool))
        cr = cluster.await_condition(namespace, "strings", generation=1)
        assert len(json.dumps(cr["status"])) < 20_000
        cm = cluster.cm(namespace, "strings-thresholds")
        assert sum(len(v) for v in cm["data"].values()) < 100_000
        _await_node_event(cluster, f"{pool}-huge", "more than the 65536 allowed")
        _await_node_event(cluster, f"{pool}-long", "at most 256 characters")


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"model": {"preset": "p" * 1_000_000}}, "spec.model.preset: Too long"),
        ({"model": LLAMA, "overrides": {"maxLatencyMs": 1e308}}, "spec.overrides.maxLatencyMs"),
        ({"model": {"parametersBillion": 8, "layers": 10**12}}, "spec.model.layers"),
        ({"model": LLAMA, "nodeSelector": {"matchLabels": {"k" * 400: "v"}}}, "at most 317"),
        (
            {"model": LLAMA, "adaptation": {"interval": "1" * 100 + "s"}},
            "spec.adaptation.interval: Too long",
        ),
    ],
)
def test_the_apiserver_refuses_what_no_deployment_has(
    kube: ClusterAccess, cluster: Cluster, namespace: str, spec: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ApiException) as err:
        cluster.create_cr(namespace, "absurd", spec)
    assert err.value.status == 422 and needle in str(err.value.body), err.value.body


def test_contradicting_overrides_are_a_warning_on_the_cr(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 6: maxLatencyMs below maxTimeToFirstTokenMs was accepted silently."""
    overrides = {"maxLatencyMs": 100, "maxTimeToFirstTokenMs": 500}
    cluster.create_cr(namespace, "contradicts", _spec(pool, overrides=overrides))
    cr = cluster.await_condition(namespace, "contradicts", "SpecWarnings", "True")
    warning = next(c for c in cr["status"]["conditions"] if c["type"] == "SpecWarnings")
    assert "maxLatencyMs (100) is below maxTimeToFirstTokenMs (500)" in warning["message"]
    assert cluster.condition(namespace, "contradicts", "Ready")["status"] == "True"  # type: ignore[index]
    cluster.await_event(namespace, "contradicts", "SpecWarning")


def test_an_invalid_spec_is_reported_once_across_restarts(
    cluster: Cluster, operator: OperatorProcess, namespace: str, pool: str
) -> None:
    """Issue 15 case 6: the InvalidSpec Event was posted again on every restart."""
    cluster.create_cr(namespace, "invalid", _spec(pool, model={"preset": "no-such-model"}))
    cluster.await_condition(namespace, "invalid", "Ready", "False", reason="InvalidSpec")
    cluster.await_event(namespace, "invalid", "InvalidSpec")
    for _ in range(2):
        operator.stop()
        operator.start()
        eventually(
            lambda: _reconciled_since_start(operator, namespace, "invalid"),
            what="the invalid CR reconciled after the restart",
        )
    events = [e for e in cluster.events(namespace, "invalid") if e["reason"] == "InvalidSpec"]
    assert sum(e.get("count") or 1 for e in events) == 1


def test_junk_in_the_stored_learned_state_is_discarded(
    cluster: Cluster,
    operator: OperatorProcess,
    prom: HostilePrometheus,
    namespace: str,
    pool: str,
) -> None:
    """A status hand-edited to absurd learned values is discarded on the next rebase, never
    folded into thresholds."""
    cluster.create_cr(namespace, "junk", _adaptive(pool, prom.url("value/40")))

    def decode() -> dict[str, Any]:
        adaptation = (cluster.cr(namespace, "junk").get("status") or {}).get("adaptation") or {}
        classes = adaptation.get("classes") or [{}]
        found: dict[str, Any] = classes[0].get("decode") or {}
        return found

    eventually(lambda: decode().get("samples"), what="samples learned")
    operator.stop()
    adaptation = cluster.cr(namespace, "junk")["status"]["adaptation"]
    adaptation["classes"][0]["decode"].update(observed=1e300, target=1e300, lastValue=1e300)
    cluster.custom.patch_namespaced_custom_object_status(
        "thresholds.inference.dev", "v1alpha1", namespace, "inferencethresholds", "junk",
        {"status": {"adaptation": adaptation}},
    )  # fmt: skip
    operator.start()
    event = cluster.await_event(namespace, "junk", "AdaptationRebased")
    assert "non-finite or absurd" in event["message"]

    def sane() -> bool:
        observed = decode().get("observed")
        return observed is not None and observed < 1000

    eventually(sane, what="learning again from sane samples")
    assert "ReconcileError" not in cluster.event_reasons(namespace, "junk")
