"""A corpus of malformed InferenceThresholds: each is rejected by the apiserver naming the
field, or accepted and reported Ready=False with a reason — and the operator keeps
reconciling the good ones, without crashing or retrying the bad ones in a loop.

Each file in tests/fixtures/bad_crs/ starts with ``# expect: rejected <text in the error>``
or ``# expect: ready-false <Reason> <text in the message>``; ``${POOL}`` is the label
value of a small test node.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from operator_harness import Cluster, OperatorProcess, eventually, install_crd, unique

from inference_thresholds_dev.cluster.access import ClusterAccess

CORPUS = sorted((Path(__file__).parents[1] / "fixtures" / "bad_crs").glob("*.yaml"))
GOOD = "good-neighbour"


def _expectation(path: Path) -> list[str]:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: ...'"
    return first.removeprefix("# expect: ").split(" ", 2)


@pytest.fixture(scope="module")
def env(kube: ClusterAccess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    install_crd(kube)
    cluster = Cluster(kube)
    pool = unique("bad")
    node = f"{pool}-node"
    cluster.create_node(node, {"test.inference.dev/pool": pool}, cpu="4", memory="8Gi")
    op = OperatorProcess(kube, tmp_path_factory.mktemp("operator-bad"))
    op.start()
    with kube.temporary_namespace("bad") as ns:
        cluster.core.create_namespaced_config_map(
            ns, {"metadata": {"name": "someone-elses"}, "data": {"owner": "not the operator"}}
        )
        cluster.create_cr(
            ns,
            GOOD,
            {
                "nodeSelector": {"matchLabels": {"test.inference.dev/pool": pool}},
                "model": {"preset": "bitnet-b1.58-2b-4t"},
            },
        )
        cluster.await_condition(ns, GOOD, generation=1)
        yield {"cluster": cluster, "operator": op, "namespace": ns, "pool": pool, "kube": kube}
    alive = op.alive()
    op.stop()
    cluster.delete_node(node)
    cluster.close()
    assert alive, f"the operator died on bad input:\n{op.log_tail()}"


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
    kinds = {_expectation(p)[0] for p in CORPUS}
    assert kinds == {"rejected", "ready-false"}


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_cr(env: dict[str, Any], path: Path) -> None:
    kube: ClusterAccess = env["kube"]
    cluster: Cluster = env["cluster"]
    ns: str = env["namespace"]
    manifest = path.read_text().replace("${POOL}", env["pool"])
    kind, *rest = _expectation(path)
    result = kube.kubectl("apply", "-n", ns, "-f", "-", input=manifest, check=False)
    if kind == "rejected":
        needle = " ".join(rest)
        assert result.returncode != 0, f"{path.name} was accepted:\n{result.stdout}"
        assert needle in result.stderr, (
            f"{path.name}: error does not name {needle!r}:\n{result.stderr}"
        )
        return
    assert result.returncode == 0, f"{path.name} rejected:\n{result.stderr}"
    reason, needle = rest[0], rest[1] if len(rest) > 1 else ""
    name = manifest.split("name: ", 1)[1].split("\n", 1)[0].strip()
    cr = cluster.await_condition(ns, name, "Ready", "False", reason=reason, generation=1)
    ready = next(c for c in cr["status"]["conditions"] if c["type"] == "Ready")
    assert needle in ready["message"], f"{path.name}: {ready['message']!r} lacks {needle!r}"
    # Events are posted just after the status write: await, do not assume.
    warning = cluster.await_event(ns, name, reason)
    assert warning["type"] == "Warning", f"{path.name}: {reason} Event is not a Warning"


def test_good_cr_keeps_reconciling_and_bad_ones_are_not_retried(env: dict[str, Any]) -> None:
    cluster: Cluster = env["cluster"]
    op: OperatorProcess = env["operator"]
    ns: str = env["namespace"]
    invalid_before = op.metric("inference_thresholds_reconciles_total", result="invalid") or 0.0
    bad = [
        item["metadata"]
        for item in cluster.custom.list_namespaced_custom_object(
            "thresholds.inference.dev", "v1alpha1", ns, "inferencethresholds"
        )["items"]
        if item["metadata"]["name"] != GOOD
    ]
    versions = {m["name"]: m["resourceVersion"] for m in bad}
    assert versions, "run the corpus first (same module)"

    # Two spec changes to the good CR, each reconciled while the bad ones sit there.
    cluster.patch_spec(ns, GOOD, {"context": {"environment": "staging"}})
    cluster.await_condition(ns, GOOD, generation=2)
    cluster.patch_spec(ns, GOOD, {"context": {"environment": "development"}})
    cluster.await_condition(ns, GOOD, generation=3)
    assert op.alive()

    # No hot loop: the invalid CRs were neither reconciled again nor rewritten.
    assert (op.metric("inference_thresholds_reconciles_total", result="invalid") or 0.0) == (
        invalid_before
    )
    for name, version in versions.items():
        assert cluster.cr(ns, name)["metadata"]["resourceVersion"] == version, name

    # Fixing one brings it back.
    cluster.patch_spec(ns, "unknown-preset", {"model": {"preset": "bitnet-b1.58-2b-4t"}})
    cluster.await_condition(ns, "unknown-preset", generation=2)
    eventually(
        lambda: cluster.cm(ns, "unknown-preset-thresholds")["data"].get(
            "BITNET_MIN_TOKENS_PER_SECOND"
        ),
        what="fixed CR gets its ConfigMap",
    )
