"""Idempotence and configuration: operator restart writes nothing, the policy file is
reloaded on change, and a concurrent ConfigMap writer (HTTP 409) is retried correctly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from operator_harness import Cluster, OperatorProcess, eventually, unique

from inference_thresholds.api.thresholds_document import ThresholdsDocument
from inference_thresholds.controller.configmap import Owner, desired_configmap, sync_configmap
from inference_thresholds.controller.kube import Kube, make_api_client
from inference_thresholds_dev.cluster.access import ClusterAccess

LLAMA = {"preset": "llama-3.1-8b"}


def _selector(pool: str) -> dict[str, Any]:
    return {"matchLabels": {"test.inference.dev/pool": pool}}


def test_restart_makes_zero_writes(
    kube: ClusterAccess, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    pool = unique("rs")
    cluster.create_node(f"{pool}-a", {"test.inference.dev/pool": pool})
    cluster.create_node(f"{pool}-b", {"test.inference.dev/pool": pool}, cpu="8", memory="32Gi")
    op = OperatorProcess(kube, tmp_path)
    try:
        op.start()
        crs = {
            "one": {"nodeSelector": _selector(pool), "model": LLAMA},
            "two": {
                "nodeSelector": _selector(pool),
                "model": {"preset": "bitnet-b1.58-2b-4t"},
                "overrides": {"maxLatencyMs": 5000},
            },
            "lonely": {"nodeSelector": _selector("nobody"), "model": LLAMA},
            "broken": {"nodeSelector": _selector(pool), "model": {"preset": "not-a-model"}},
        }
        for name, spec in crs.items():
            cluster.create_cr(namespace, name, spec)
        cluster.await_condition(namespace, "one")
        cluster.await_condition(namespace, "two")
        cluster.await_condition(namespace, "lonely", "Ready", "False", reason="NoMatchingNodes")
        cluster.await_condition(namespace, "broken", "Ready", "False", reason="InvalidSpec")
        # Settled: a quiet second snapshot equals the first once the last writes landed.
        before = eventually(
            lambda: (s := cluster.versions(namespace)) == cluster.versions(namespace) and s,
            what="namespace settled",
        )
        op.stop()
        op.start()

        def reconciled_all() -> bool:
            return all(
                op.metric("inference_thresholds_nodes_matched", namespace=namespace, name=n)
                is not None
                for n in crs
            )

        eventually(reconciled_all, what="restarted operator reconciled every CR")
        after = cluster.versions(namespace)
        assert after == before, "a restart must not write CRs, ConfigMaps or Events"
        assert (
            op.metric("inference_thresholds_configmap_writes_total", action="updated") or 0
        ) == 0
        assert op.alive()
    finally:
        op.stop()
        cluster.delete_node(f"{pool}-a")
        cluster.delete_node(f"{pool}-b")


def test_policy_file_change_recomputes_and_bad_file_keeps_last_policy(
    kube: ClusterAccess, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    pool = unique("pol")
    policy = tmp_path / "policy.yaml"
    policy.write_text("{}\n")
    cluster.create_node(f"{pool}-n", {"test.inference.dev/pool": pool})
    op = OperatorProcess(kube, tmp_path, policy=policy)
    try:
        op.start()
        cluster.create_cr(namespace, "pol", {"nodeSelector": _selector(pool), "model": LLAMA})
        first = cluster.await_condition(namespace, "pol")["status"]["effective"]
        # Raise the production decode floor: thresholds follow, with an Event.
        policy.write_text("decodeFloor:\n  production: 0.9\n")

        def moved() -> float | None:
            eff = cluster.cr(namespace, "pol")["status"]["effective"]
            value: float | None = eff.get("minTokensPerSecond")
            return value if value != first["minTokensPerSecond"] else None

        new_min = eventually(moved, what="thresholds recomputed after the policy changed")
        assert new_min > first["minTokensPerSecond"]
        cluster.await_event(namespace, "pol", "ThresholdsChanged")
        assert op.metric("inference_thresholds_policy_reloads_total", result="ok") == 1.0

        # A broken file is reported and ignored; thresholds stay.
        policy.write_text("decodeFloor: [this is not a mapping\n")
        eventually(
            lambda: op.metric("inference_thresholds_policy_reloads_total", result="failed"),
            what="failed reload counted",
        )
        assert cluster.cr(namespace, "pol")["status"]["effective"]["minTokensPerSecond"] == new_min
        assert op.alive()
    finally:
        op.stop()
        cluster.delete_node(f"{pool}-n")


class _RacingKube(Kube):
    """The real client, plus one concurrent writer between our read and our write."""

    def __init__(self, api: Any, cluster: Cluster) -> None:
        super().__init__(api)
        self.cluster = cluster
        self.raced = 0
        self.conflicts = 0

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        current = super().get_configmap(namespace, name)
        if current is not None and self.raced < 2:
            self.raced += 1
            self.cluster.core.patch_namespaced_config_map(
                name, namespace, {"metadata": {"annotations": {"racer": str(self.raced)}}}
            )
        return current

    def replace_configmap(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        try:
            return super().replace_configmap(namespace, name, body)
        except Exception as exc:
            if getattr(exc, "status", None) == 409:
                self.conflicts += 1
            raise


def test_configmap_write_conflict_is_retried(
    kube: ClusterAccess, cluster: Cluster, namespace: str
) -> None:
    # A real owner: a dangling ownerReference would let the garbage collector delete the
    # ConfigMap mid-test. No operator runs here, so the CR itself stays untouched.
    cr = cluster.create_cr(namespace, "race", {"model": LLAMA})
    doc = ThresholdsDocument(owner="race", namespace=namespace, generation=1, content_hash="h1")
    owner = Owner("race", namespace, cr["metadata"]["uid"])
    first = desired_configmap(doc, name="race-thresholds", env_prefix="BITNET_", owner=owner)
    with make_api_client(str(kube.kubeconfig)) as api:
        plain = Kube(api)
        assert sync_configmap(plain, first, owner, previously_written=False).action == "created"
        racing = _RacingKube(api, cluster)
        doc2 = doc.model_copy(update={"generation": 2, "content_hash": "h2"})
        second = desired_configmap(doc2, name="race-thresholds", env_prefix="BITNET_", owner=owner)
        outcome = sync_configmap(racing, second, owner, previously_written=True)
    assert racing.conflicts == 2, "the real apiserver answered 409 to both stale writes"
    assert outcome.action == "updated"
    cm = cluster.cm(namespace, "race-thresholds")
    assert cm["data"] == second["data"]
    assert cm["metadata"]["annotations"]["racer"] == "2", "the other writer's change survived"


def test_namespace_restricted_operator_leaves_other_namespaces_alone(
    kube: ClusterAccess, cluster: Cluster, tmp_path: Path
) -> None:
    pool = unique("nsr")
    cluster.create_node(f"{pool}-n", {"test.inference.dev/pool": pool})
    spec = {"nodeSelector": _selector(pool), "model": LLAMA}
    with kube.temporary_namespace("mine") as mine, kube.temporary_namespace("theirs") as theirs:
        op = OperatorProcess(kube, tmp_path, namespaces=(mine,))
        try:
            cluster.create_cr(theirs, "ignored", spec)
            op.start()
            cluster.create_cr(mine, "served", spec)
            cluster.await_condition(mine, "served")
            # Nodes are cluster-scoped, yet a namespaced operator still sees them.
            assert cluster.cr(mine, "served")["status"]["nodesMatched"] == 1
            eventually(
                lambda: op.metric(
                    "inference_thresholds_nodes_matched", namespace=mine, name="served"
                ),
                what="served CR exported",
            )
            ignored = cluster.cr(theirs, "ignored")
            assert "status" not in ignored and not ignored["metadata"].get("finalizers")
            assert cluster.configmap(theirs, "ignored-thresholds") is None
        finally:
            op.stop()
            cluster.delete_node(f"{pool}-n")
