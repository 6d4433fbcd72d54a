"""Shared pytest setup: the Kubernetes cluster fixtures.

Tests under ``tests/cluster/`` are marked ``cluster`` automatically and talk to a real
kube-apiserver through the session-scoped ``kube`` fixture (a
``inference_thresholds_dev.cluster.access.ClusterAccess``)::

    from kubernetes import client

    def test_example(kube, namespace):
        with kube.api_client() as api:                      # admin credentials
            client.CoreV1Api(api).list_namespaced_config_map(namespace)
        token = kube.service_account_token(namespace, "default")
        with kube.api_client(token=token) as api: ...       # as that service account
        kube.kubectl("get", "configmaps", "-n", namespace)  # CompletedProcess, raises on failure
        kube.eventually(lambda: ..., timeout=30, what="...")  # poll instead of sleeping

``kube.kubeconfig`` is the kubeconfig path; ``kube.local`` is True for the project's own
control plane (etcd + kube-apiserver + kube-controller-manager built by
``hack/controlplane/build.sh``, started once per session on 127.0.0.1; no kubelet and no
scheduler, so tests register Node objects and set ``spec.nodeName`` themselves).

``pytest --existing-cluster`` uses the cluster ``$KUBECONFIG`` (or ``~/.kube/config``)
points at instead, e.g. kind or k3d.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from inference_thresholds_dev.cluster.access import ClusterAccess

_CLUSTER_TESTS = Path(__file__).parent / "cluster"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--existing-cluster",
        action="store_true",
        help="run cluster tests against $KUBECONFIG instead of starting a local control plane",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _CLUSTER_TESTS in item.path.parents:
            item.add_marker(pytest.mark.cluster)


def live_progress(request: pytest.FixtureRequest, label: str) -> Callable[[str], None]:
    """A progress printer for session fixtures: shown live, past pytest's capture, so a
    cold build or a slow start does not look like a hang."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")

    def say(message: str) -> None:
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line(f"[{label}] {message}"[:160])

    return say


@pytest.fixture(scope="session")
def progress(request: pytest.FixtureRequest) -> Callable[[str], Callable[[str], None]]:
    """``progress("label")``: live_progress for fixtures in other conftest files."""
    return lambda label: live_progress(request, label)


@pytest.fixture(scope="session")
def kube(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterAccess]:
    """The cluster under test; see the module docstring."""
    from inference_thresholds_dev.cluster.access import ClusterAccess

    if request.config.getoption("--existing-cluster"):
        configured = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        path = Path(configured or Path.home() / ".kube" / "config").expanduser()
        if not path.is_file():
            raise pytest.UsageError(
                f"--existing-cluster: kubeconfig {path} not found; set KUBECONFIG"
            )
        yield ClusterAccess(path, local=False)
        return

    from inference_thresholds_dev.cluster.binaries import locate
    from inference_thresholds_dev.cluster.cluster import LocalCluster

    say = live_progress(request, "control plane")
    say("locating binaries (hack/controlplane/build.sh; a cold build takes minutes)")
    state_dir = tmp_path_factory.mktemp("controlplane")
    cluster = LocalCluster(state_dir, locate())
    cluster.start(progress=say)
    say(
        f"ready at {cluster.server} (/readyz {cluster.timings['readyz']:.1f} s, "
        f"controllers {cluster.timings['controllers']:.1f} s); logs in {state_dir / 'logs'}"
    )
    try:
        yield ClusterAccess(cluster.kubeconfig, local=True)
    finally:
        cluster.stop(remove_state=False)  # logs stay for post-mortems (pytest prunes old runs)
        shutil.rmtree(state_dir / "etcd-data", ignore_errors=True)


@pytest.fixture
def namespace(kube: ClusterAccess) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    with kube.temporary_namespace("t") as name:
        yield name
