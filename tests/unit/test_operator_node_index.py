"""Which CRs a node change wakes: only those whose selection it affects."""

from __future__ import annotations

from inference_thresholds.api.crd import NodeSelector
from inference_thresholds.controller.node_index import Selection, affected_by_node, node_record
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


def test_node_changes_wake_only_affected_crs() -> None:
    n1 = _record("n1", {"pool": "gpu"})
    selections = {
        "gpu": Selection(_sel(pool="gpu"), {"n1": n1.class_key}),
        "cpu": Selection(_sel(pool="cpu"), {}),
        "broken": Selection(None),
    }
    # Unchanged node (e.g. a status heartbeat): nobody.
    assert affected_by_node(selections, "n1", n1) == set()
    # Relabel gpu -> cpu: it leaves one selection and enters the other.
    assert affected_by_node(selections, "n1", _record("n1", {"pool": "cpu"})) == {"gpu", "cpu"}
    # Same labels, different hardware: only the CR selecting it.
    assert affected_by_node(selections, "n1", _record("n1", {"pool": "gpu"}, cpu="8")) == {"gpu"}
    # A new node in no selection: nobody; in one: that one.
    assert affected_by_node(selections, "n9", _record("n9", {"pool": "edge"})) == set()
    assert affected_by_node(selections, "n9", _record("n9", {"pool": "cpu"})) == {"cpu"}
    # Deleted while selected.
    assert affected_by_node(selections, "n1", None) == {"gpu"}
