"""Fixtures shared by the cluster tests.

``cluster``/``operator`` (module-scoped, on the session's control plane): the CRD installed
and the operator running as a local process, so a module that restarts or breaks its
operator cannot disturb another. ``real_node`` (session-scoped, started on first use): a
private cluster with a real node (kubelet, containerd + runc) and the project's images,
for the ``node`` tests (node_support.py).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helm_support import Helm, make_helm
from node_support import RealNodeCluster
from operator_harness import Cluster, OperatorProcess, install_crd

from inference_thresholds_dev.cluster.access import ClusterAccess


@pytest.fixture(scope="module")
def cluster(kube: ClusterAccess) -> Iterator[Cluster]:
    install_crd(kube)
    c = Cluster(kube)
    yield c
    c.close()


@pytest.fixture(scope="module")
def operator(
    kube: ClusterAccess, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube, tmp_path_factory.mktemp("operator"))
    op.start()
    yield op
    alive = op.alive()
    op.stop()
    assert alive, f"the operator died during the tests:\n{op.log_tail()}"


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The pinned helm with its own cache and config (a module may define its own)."""
    return make_helm(tmp_path_factory)


@pytest.fixture(scope="session")
def real_node(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    progress: Callable[[str], Callable[[str], None]],
) -> Iterator[RealNodeCluster]:
    """A cluster with a real node and the operator/node-agent images imported."""
    if request.config.getoption("--existing-cluster"):
        pytest.skip("the node tests start their own node (kubelet + containerd)")
    if os.geteuid() != 0:
        pytest.skip("a real node (containerd, kubelet, runc) needs root")
    from inference_thresholds_dev.cluster.binaries import locate
    from inference_thresholds_dev.cluster.cluster import LocalCluster, reap_stale
    from inference_thresholds_dev.images.build import project_images
    from inference_thresholds_dev.local_chart import REPOSITORY_ROOT, deploy_project_images

    say = progress("real node")
    timings: dict[str, float] = {}
    began = time.monotonic()
    say("building/reusing the operator and node-agent images (a cold build takes minutes)")
    images = project_images(REPOSITORY_ROOT, progress=say)
    timings["images"] = time.monotonic() - began
    # Short: containerd's and the kubelet's unix sockets live below it (108-byte limit).
    for stale in reap_stale(Path("/tmp"), "itn-"):
        say(f"cleaned up after a killed session: {stale}")
    state_dir = Path(tempfile.mkdtemp(prefix="itn-", dir="/tmp"))
    cluster = LocalCluster(state_dir, locate(), node=True)
    try:
        cluster.start(timeout=180, progress=say)
        began = time.monotonic()
        deploy_project_images(cluster, progress=say)
        timings["import"] = time.monotonic() - began
        timings.update(cluster.timings)
        say(
            "ready: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
            + f"; logs in {state_dir / 'logs'}"
        )
        yield RealNodeCluster(
            cluster, ClusterAccess(cluster.kubeconfig, local=True), images, timings
        )
    finally:
        problems = cluster.stop(remove_state=False)
        # Logs stay with pytest's temporary files for post-mortems; the rest goes.
        if (state_dir / "logs").is_dir():
            shutil.move(state_dir / "logs", tmp_path_factory.mktemp("real-node") / "logs")
        if not problems:
            shutil.rmtree(state_dir, ignore_errors=True)
    assert not problems, f"the real node left things behind: {problems}"
