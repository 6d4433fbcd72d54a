"""Which CRs a node change wakes: only those whose selection it affects."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference_thresholds.api.crd import NodeSelector
from inference_thresholds.controller.node_index import (
    NodeChange,
    Selection,
    affected_by_node,
    node_record,
)
from inference_thresholds.controller.selector import matches


def _record(name: str, labels: dict[str, str], cpu: str = "16"):  # type: ignore[no-untyped-def]
    return node_record(
        {"metadata": {"name": name, "labels": labels}, "status": {"capacity": {"cpu": cpu}}}
    )


def _sel(**labels: str) -> NodeSelector:
    return NodeSelector(match_labels=labels)


def test_selector_semantics() -> None:
    sel = NodeSelector.model_validate(
        {
            "matchLabels": {"pool": "gpu"},
            "matchExpressions": [
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
                {"key": "gpu", "operator": "Exists"},
                {"key": "tainted", "operator": "DoesNotExist"},
            ],
        }
    )
    assert matches(sel, {"pool": "gpu", "gpu": "1"})  # NotIn holds when the label is absent
    assert not matches(sel, {"pool": "gpu", "gpu": "1", "zone": "b"})
    assert not matches(sel, {"pool": "gpu"})
    assert not matches(sel, {"pool": "gpu", "gpu": "1", "tainted": ""})
    assert matches(NodeSelector(), {})


def _integer(op: str, value: str) -> NodeSelector:
    return NodeSelector.model_validate(
        {"matchExpressions": [{"key": "hw/n", "operator": op, "values": [value]}]}
    )


@pytest.mark.parametrize(
    ("op", "bound", "label", "selected"),
    [
        ("Gt", "7900", "7910", True),
        ("Gt", "7910", "7910", False),  # strictly greater
        ("Lt", "8000", "7910", True),
        ("Lt", "7910", "7910", False),
        ("Gt", "7", "7.91", False),  # not an integer: never matches, as in node affinity
        ("Lt", "100", "7.91", False),
        ("Gt", "0", "true", False),
        ("Gt", "0", "", False),
        ("Lt", "10", "0009", True),  # strconv.ParseInt reads leading zeros
        ("Gt", "0", "99999999999999999999", False),  # past int64: not an integer
        ("Lt", "9223372036854775807", "9223372036854775806", True),
    ],
)
def test_gt_lt_follow_node_affinity(op: str, bound: str, label: str, selected: bool) -> None:
    assert matches(_integer(op, bound), {"hw/n": label}) is selected


def test_gt_lt_never_match_a_missing_label() -> None:
    assert not matches(_integer("Gt", "0"), {})
    assert not matches(_integer("Lt", "10"), {"other": "1"})


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**63 - 1))
def test_gt_lt_compare_as_integers_not_text(bound: int, label: int) -> None:
    labels = {"hw/n": str(label)}
    assert matches(_integer("Gt", str(bound)), labels) is (label > bound)
    assert matches(_integer("Lt", str(bound)), labels) is (label < bound)


def test_node_changes_wake_only_affected_crs() -> None:
    n1 = _record("n1", {"pool": "gpu"})
    selections = {
        "gpu": Selection(_sel(pool="gpu"), 1),
        "cpu": Selection(_sel(pool="cpu"), 0),
        "broken": Selection(None),
    }

    def hit(old, new):  # type: ignore[no-untyped-def]
        return affected_by_node(selections, NodeChange(old, new))

    # Unchanged node (e.g. a status heartbeat): nobody.
    assert hit(n1, n1) == set()
    # Relabel gpu -> cpu: it leaves one selection and enters the other.
    assert hit(n1, _record("n1", {"pool": "cpu"})) == {"gpu", "cpu"}
    # Same labels, different hardware: only the CR selecting it.
    assert hit(n1, _record("n1", {"pool": "gpu"}, cpu="8")) == {"gpu"}
    # A label no selector reads: nobody, without matching.
    assert hit(n1, _record("n1", {"pool": "gpu", "other": "x"})) == set()
    # A new node in no selection: nobody; in one: that one.
    assert hit(None, _record("n9", {"pool": "edge"})) == set()
    assert hit(None, _record("n9", {"pool": "cpu"})) == {"cpu"}
    # Deleted while selected.
    assert hit(n1, None) == {"gpu"}


def test_change_keys_are_the_labels_that_changed() -> None:
    a = _record("n1", {"pool": "gpu", "zone": "a"})
    b = _record("n1", {"pool": "gpu", "zone": "b", "new": "1"})
    assert NodeChange(a, b).keys == {"zone", "new"}
    assert not NodeChange(a, b).hardware
    assert NodeChange(None, a).keys == {"pool", "zone"} and NodeChange(None, a).hardware
    stamp = _record("n1", {"pool": "gpu", "zone": "a", "nvidia.com/gfd.timestamp": "1"})
    later = _record("n1", {"pool": "gpu", "zone": "a", "nvidia.com/gfd.timestamp": "2"})
    assert NodeChange(stamp, later).only_own_labels()
    assert not NodeChange(a, b).only_own_labels()
