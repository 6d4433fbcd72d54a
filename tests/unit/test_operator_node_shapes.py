"""The node index keeps what CRs read, shared across nodes of one shape, and selects as
a per-node match would."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from inference_thresholds.api.crd import NodeSelector
from inference_thresholds.controller.node_index import NodeIndex, node_inputs, select
from inference_thresholds.controller.selector import matches

HOST = "kubernetes.io/hostname"


def _node(name: str, labels: dict[str, str], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {HOST: name, **labels},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
            "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
        },
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "capacity": {"cpu": "16", "memory": "64Gi"},
            "nodeInfo": {"architecture": "amd64", "kernelVersion": "6.1"},
            "images": [{"names": [f"registry/img-{i}:v1"], "sizeBytes": i} for i in range(50)],
            "conditions": [{"type": "Ready", "status": "True"}],
            **status,
        },
    }


def test_inputs_keep_what_the_hardware_reads_and_drop_the_rest() -> None:
    inputs = node_inputs(_node("n1", {"pool": "a"}))
    assert inputs.name == "n1"
    assert inputs.labels == {HOST: "n1", "pool": "a"}
    assert dict(inputs.status) == {
        "allocatable": (("cpu", "16"), ("memory", "64Gi"), ("pods", "110")),
        "nodeInfo": (("architecture", "amd64"),),
    }
    kept = repr(inputs)
    assert "img-" not in kept and "Ready" not in kept and "kubelet" not in kept
    # capacity is read only when allocatable is missing (the hardware's fallback)
    bare = _node("n2", {})
    del bare["status"]["allocatable"]
    assert dict(node_inputs(bare).status)["capacity"] == (("cpu", "16"), ("memory", "64Gi"))
    # a metadata-only object (PartialObjectMetadata) has no status at all
    meta_only = {"kind": "PartialObjectMetadata", "metadata": {"name": "n3", "labels": {}}}
    assert node_inputs(meta_only).status == ()


def test_nodes_differing_only_by_name_share_one_shape() -> None:
    index = NodeIndex()
    for i in range(50):
        index.apply(f"n{i}", node_inputs(_node(f"n{i}", {"pool": "a"})))
    assert len(index) == 50 and index.shapes == 1
    a, b = index["n1"], index["n2"]
    assert a.hardware is b.hardware and a.class_key == b.class_key
    assert dict(a.labels) == {HOST: "n1", "pool": "a"}
    assert a.labels[HOST] == "n1" and b.labels[HOST] == "n2"
    assert HOST in a.labels and "zone" not in a.labels and len(a.labels) == 2


def test_only_changes_to_what_crs_read_are_reported() -> None:
    index = NodeIndex()
    assert index.apply("n1", node_inputs(_node("n1", {"pool": "a"}))) is not None
    heartbeat = _node("n1", {"pool": "a"}, conditions=[{"type": "Ready", "status": "False"}])
    heartbeat["metadata"]["annotations"]["other"] = "x"
    assert index.apply("n1", node_inputs(heartbeat)) is None
    change = index.apply("n1", node_inputs(_node("n1", {"pool": "b"})))
    assert change is not None
    old, new = change.old, change.new
    assert old is not None and new is not None
    assert change.keys == {"pool"} and not change.hardware
    assert old.labels["pool"] == "a" and new.labels["pool"] == "b"
    assert index.shapes == 1  # the old shape went with its last member
    more_gpus = _node("n1", {"pool": "b"}, allocatable={"cpu": "16", "nvidia.com/gpu": "8"})
    change = index.apply("n1", node_inputs(more_gpus))
    assert change is not None and change.hardware and change.keys == frozenset()
    gone = index.apply("n1", None)
    assert gone is not None and gone.new is None
    assert len(index) == 0 and index.shapes == 0
    assert index.apply("n1", None) is None


def test_snapshot_is_immutable_while_the_index_moves_on() -> None:
    index = NodeIndex()
    index.apply("n1", node_inputs(_node("n1", {"pool": "a"})))
    snap = index.snapshot()
    assert index.snapshot() is snap  # shared until a change
    index.apply("n2", node_inputs(_node("n2", {"pool": "a"})))
    assert list(snap) == ["n1"]
    assert sorted(index.snapshot()) == ["n1", "n2"]


_KEYS = ["pool", "zone", "gpu", HOST, "owner"]
_VALUES = ["a", "b", "n1", "n2", "7", "12"]


@st.composite
def _selectors(draw: st.DrawFn) -> NodeSelector:
    exprs = []
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]))
        key = draw(st.sampled_from(_KEYS))
        if op in ("Exists", "DoesNotExist"):
            values: list[str] = []
        elif op in ("Gt", "Lt"):
            values = [draw(st.sampled_from(["0", "8", "20"]))]
        else:
            values = draw(st.lists(st.sampled_from(_VALUES), min_size=1, max_size=3))
        exprs.append({"key": key, "operator": op, "values": values})
    match_labels = draw(st.dictionaries(st.sampled_from(_KEYS), st.sampled_from(_VALUES)))
    return NodeSelector.model_validate({"matchLabels": match_labels, "matchExpressions": exprs})


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.dictionaries(
            st.sampled_from(["pool", "zone", "gpu", "owner"]), st.sampled_from(_VALUES)
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(_selectors(), min_size=1, max_size=5),
)
def test_selection_by_shape_equals_matching_every_node(
    label_sets: list[dict[str, str]], selectors: list[NodeSelector]
) -> None:
    index = NodeIndex()
    nodes = {}
    for i, labels in enumerate(label_sets):
        name = f"n{i + 1}"  # "owner: n1" on node n1 is one of its own labels
        nodes[name] = {HOST: name, **labels}
        index.apply(name, node_inputs({"metadata": {"name": name, "labels": nodes[name]}}))
    snap = index.snapshot()
    for sel in selectors:
        want = sorted(n for n, labels in nodes.items() if matches(sel, labels))
        assert [r.name for r in select(snap, sel)] == want
        assert [r.name for r in select(dict(snap), sel)] == want  # plain mapping path
