"""The apiserver goes away mid-run and comes back: the operator survives and resumes.

Runs its own local control plane (the session one is shared, and restarting it under
other tests would be rude), then stops and restarts only kube-apiserver on the same
etcd, port and certificates, as a control-plane upgrade or crash would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import Cluster, OperatorProcess, eventually, install_crd

from inference_thresholds_dev.cluster import processes
from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.binaries import BinariesError, locate
from inference_thresholds_dev.cluster.cluster import LocalCluster


@pytest.fixture(scope="module")
def own(kube: ClusterAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if not kube.local:
        pytest.skip("needs the project's local control plane binaries")
    try:
        binaries = locate()
    except BinariesError as exc:
        pytest.skip(str(exc))
    cluster = LocalCluster(tmp_path_factory.mktemp("cp-restart"), binaries)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(remove_state=False)


def _restart_apiserver(cluster: LocalCluster) -> None:
    old = next(p for p in cluster.processes if p.name == "kube-apiserver")
    assert old.popen is not None
    argv = [str(a) for a in old.popen.args]  # type: ignore[union-attr]
    processes.stop(old)
    cluster.processes.remove(old)
    eventually(lambda: cluster.get("/readyz")[0] == 0, what="apiserver down")
    new = processes.spawn(
        "kube-apiserver", argv, cluster.log_path("kube-apiserver-restarted"), tie_to_parent=True
    )
    cluster.processes.append(new)
    eventually(lambda: cluster.get("/readyz")[0] == 200, timeout=60, what="apiserver back")


def test_operator_survives_apiserver_restart(own: LocalCluster, tmp_path: Path) -> None:
    access = ClusterAccess(own.kubeconfig, local=True)
    install_crd(access)
    cluster = Cluster(access)
    op = OperatorProcess(access, tmp_path)
    try:
        cluster.create_node("rs-node", {"test.inference.dev/pool": "restart"})
        with access.temporary_namespace("rs") as ns:
            op.start()
            spec = {
                "nodeSelector": {"matchLabels": {"test.inference.dev/pool": "restart"}},
                "model": {"preset": "llama-3.1-8b"},
            }
            cluster.create_cr(ns, "survivor", spec)
            cluster.await_condition(ns, "survivor", generation=1)

            _restart_apiserver(own)
            cluster.close()
            cluster = Cluster(access)  # fresh connections for the test's own client

            # The operator's watches reconnect: a spec change and a new node get handled.
            cluster.patch_spec(ns, "survivor", {"context": {"environment": "staging"}})
            cluster.await_condition(ns, "survivor", generation=2, timeout=90)
            cluster.create_node("rs-node-2", {"test.inference.dev/pool": "restart"}, cpu="4")
            eventually(
                lambda: cluster.cr(ns, "survivor")["status"].get("nodesMatched") == 2,
                timeout=90,
                what="new node seen after the restart",
            )
            assert op.alive(), op.log_tail()
            assert op.healthy()
    finally:
        op.stop()
        cluster.close()
