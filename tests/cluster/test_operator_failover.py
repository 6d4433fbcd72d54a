"""Two replicas, one active (Lease leader election) on the real apiserver: the standby
writes nothing, takes over within 15 s of kill -9 and at once after SIGTERM, and the
takeover rewrites nothing that was already right."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kubernetes import client
from operator_harness import Cluster, OperatorProcess, eventually, unique

from inference_thresholds_dev.cluster.access import ClusterAccess

POOL = "test.inference.dev/pool"
TAKEOVER_S = 15.0


def _replicas(kube: ClusterAccess, tmp: Path, namespace: str, lease: str) -> list[OperatorProcess]:
    env = {
        "INFERENCE_THRESHOLDS_OPERATOR_LEADER_ELECT": "true",
        "INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAMESPACE": namespace,
        "INFERENCE_THRESHOLDS_OPERATOR_LEASE_NAME": lease,
    }
    out = []
    for i in range(2):
        (tmp / f"r{i}").mkdir()
        out.append(OperatorProcess(kube, tmp / f"r{i}", namespaces=(namespace,), env=env))
    return out


def _roles(ops: list[OperatorProcess]) -> list[str]:
    return [op.health()["role"] if op.alive() else "dead" for op in ops]


def _leader(ops: list[OperatorProcess]) -> OperatorProcess:
    def one() -> OperatorProcess | None:
        roles = _roles(ops)
        if roles.count("leader") == 1:
            return ops[roles.index("leader")]
        return None

    return eventually(one, timeout=30, what="exactly one leader")


def _passed_over(leader: OperatorProcess, crs: int) -> None:
    """Until the new leader's first pass over every CR is done."""
    eventually(
        lambda: (leader.metric("inference_thresholds_reconciles_total", result="ok") or 0) >= crs,
        timeout=30,
        what="the new leader's first pass over every CR",
    )


def _lease(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    lease = client.CoordinationV1Api(cluster.api).read_namespaced_lease(name, ns)
    spec: dict[str, Any] = cluster.api.sanitize_for_serialization(lease)["spec"]
    return spec


def _generation_in_configmap(cluster: Cluster, ns: str, cm: str, generation: int) -> bool:
    doc = cluster.document(ns, cm) if cluster.configmap(ns, cm) else {}
    return int(doc.get("generation") or 0) >= generation


def test_standby_takes_over_after_kill_and_sigterm_without_redundant_writes(
    kube: ClusterAccess, cluster: Cluster, namespace: str, tmp_path: Path
) -> None:
    pool = unique("fo")
    cluster.create_node(f"{pool}-a", {POOL: pool})
    cluster.create_node(f"{pool}-b", {POOL: pool}, cpu="8", memory="32Gi")
    lease = unique("lease")
    ops = _replicas(kube, tmp_path, namespace, lease)
    try:
        for op in ops:
            op.start()
        first = _leader(ops)
        # The other replica may still be listing Nodes ("starting"); it must then wait.
        eventually(
            lambda: sorted(_roles(ops)) == ["leader", "standby"],
            timeout=30,
            what="the other replica to become a standby",
        )
        assert first.health()["role"] == "leader"
        names = [f"cr-{i}" for i in range(4)]
        for name in names:
            cluster.create_cr(
                namespace,
                name,
                {
                    "nodeSelector": {"matchLabels": {POOL: pool}},
                    "model": {"preset": "llama-3.2-1b"},
                },
            )
        for name in names:
            cluster.await_condition(namespace, name, generation=1)
        holder = _lease(cluster, namespace, lease)["holderIdentity"]
        assert holder == first.health()["election"]["identity"]
        settled = cluster.versions(namespace)

        # kill -9: no release; the standby waits out the lease on its own clock.
        standby = next(op for op in ops if op is not first)
        killed_at = time.monotonic()
        first.kill()
        cluster.patch_spec(namespace, names[0], {"context": {"workload": {"outputTokens": 77}}})
        cm = cluster.cr(namespace, names[0])["status"]["configMapRef"]["name"]
        eventually(
            lambda: _generation_in_configmap(cluster, namespace, cm, 2),
            timeout=40,
            what="the new leader to serve the spec change",
        )
        takeover = time.monotonic() - killed_at
        assert takeover < TAKEOVER_S, f"takeover took {takeover:.1f} s"
        assert standby.health()["role"] == "leader"
        spec = _lease(cluster, namespace, lease)
        assert spec["holderIdentity"] == standby.health()["election"]["identity"]
        assert spec["leaseTransitions"] >= 1

        # Every CR was checked by the new leader; only the changed one was rewritten.
        _passed_over(standby, len(names))
        after = cluster.versions(namespace)
        changed = {k for k in after if after[k] != settled.get(k)}
        assert changed <= {f"cr/{names[0]}", f"cm/{cm}", "events"}, changed

        # The killed replica comes back as a standby; SIGTERM on the leader hands over at
        # once (the lease is released) and the new leader rewrites nothing.
        first.start()
        # /healthz answers from the start ("starting" while the node list runs).
        eventually(lambda: first.health()["role"] == "standby", timeout=30, what="standby")
        cluster.await_condition(namespace, names[0], generation=2)
        settled = cluster.versions(namespace)
        stopped_at = time.monotonic()
        standby.stop()  # SIGTERM
        eventually(lambda: first.health()["role"] == "leader", timeout=15, what="handover")
        handover = time.monotonic() - stopped_at
        assert handover < 5.0, f"handover after SIGTERM took {handover:.1f} s"
        _passed_over(first, len(names))
        assert cluster.versions(namespace) == settled
    finally:
        for op in ops:
            op.stop()
        cluster.delete_node(f"{pool}-a")
        cluster.delete_node(f"{pool}-b")
