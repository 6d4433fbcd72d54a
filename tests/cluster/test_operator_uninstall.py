"""No finalizer: a CR deleted while the operator is gone (after ``helm uninstall``) goes at once.

The operator runs no kopf daemon and no change handler (see controller/cr_tasks.py), so
kopf adds no finalizer and even removes the one an older version left. Also shown: a CR
deleted while the operator runs stops its loops (the ConfigMap goes with the CR through
its ownerReference). The chart's own uninstall with CRs present is in
tests/cluster/test_helm_hooks.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from operator_harness import Cluster, OperatorProcess, eventually, nodes, unique

from inference_thresholds.controller.settings import FINALIZER
from inference_thresholds_dev.cluster.access import ClusterAccess

GROUP = "thresholds.inference.dev"


@pytest.fixture
def own_operator(
    kube: ClusterAccess, cluster: Cluster, tmp_path: Path
) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube, tmp_path)
    op.start()
    yield op
    op.stop()


def _spec(pool: str) -> dict[str, object]:
    return {
        "nodeSelector": {"matchLabels": {"test.inference.dev/pool": pool}},
        "model": {"preset": "llama-3.1-8b"},
    }


def test_crs_carry_no_finalizer_and_delete_without_the_operator(
    cluster: Cluster, own_operator: OperatorProcess, namespace: str
) -> None:
    pool = unique("uninstall")
    with nodes(cluster, [(f"{pool}-n", {"test.inference.dev/pool": pool}, {})]):
        cluster.create_cr(namespace, "plain", _spec(pool))
        # an object an older operator version finalized: kopf takes the finalizer off
        cluster.custom.create_namespaced_custom_object(GROUP, "v1alpha1", namespace,
            "inferencethresholds", {
                "apiVersion": f"{GROUP}/v1alpha1", "kind": "InferenceThresholds",
                "metadata": {"name": "legacy", "finalizers": [FINALIZER]}, "spec": _spec(pool),
            })  # fmt: skip
        for name in ("plain", "legacy"):
            cluster.await_condition(namespace, name, generation=1)
        eventually(
            lambda: not cluster.cr(namespace, "legacy")["metadata"].get("finalizers"),
            what="the legacy finalizer removed",
        )
        for name in ("plain", "legacy"):
            meta = cluster.cr(namespace, name)["metadata"]
            assert not meta.get("finalizers"), meta
            ours = [k for k in meta.get("annotations") or {} if k.startswith(GROUP)]
            assert not ours, f"kopf progress annotations on {name}: {ours}"
            assert cluster.configmap(namespace, f"{name}-thresholds") is not None

        # deleted while the operator runs: its loops stop, the operator carries on
        cluster.delete_cr(namespace, "plain")
        eventually(lambda: cluster.get_cr(namespace, "plain") is None, timeout=10,
                   what="CR gone at once")  # fmt: skip
        assert own_operator.alive()

        # the operator is gone (uninstalled): deleting a CR still completes
        own_operator.stop()
        cluster.delete_cr(namespace, "legacy")
        eventually(lambda: cluster.get_cr(namespace, "legacy") is None, timeout=10,
                   what="CR deleted with no operator running")  # fmt: skip
        for name in ("plain", "legacy"):
            eventually(
                lambda name=name: cluster.configmap(namespace, f"{name}-thresholds") is None,  # type: ignore[misc]
                timeout=60,
                what=f"ConfigMap of {name} garbage-collected",
            )
