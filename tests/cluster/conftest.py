"""Fixtures shared by the operator tests: the CRD installed and the operator running.

Module-scoped: each test module gets its own operator process, so a module that
restarts or breaks its operator cannot disturb another.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from operator_harness import Cluster, OperatorProcess, install_crd

from inference_thresholds.devcluster.access import ClusterAccess


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
