"""Which events wake a CR's daemon: real changes do, heartbeats and our own echoes do not."""

from __future__ import annotations

from typing import Any

from operator_fakes import empty_operator_state

from inference_thresholds.api.crd import NodeSelector
from inference_thresholds.controller import wakeups
from inference_thresholds.controller.configmap import (
    CONTENT_HASH_ANNOTATION,
    DATA_HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    OWNER_UID_ANNOTATION,
    data_fingerprint,
    data_hash,
)
from inference_thresholds.controller.node_index import Selection, node_inputs

KEY = ("ns", "cr")


def _node(labels: dict[str, str], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "n1", "labels": labels, "annotations": annotations or {}},
        "status": {"capacity": {"cpu": "16"}},
    }


def _configmap(data: dict[str, str], content: str = "abc", uid: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "cr-thresholds",
            "namespace": "ns",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: "cr"},
            "annotations": {
                CONTENT_HASH_ANNOTATION: content,
                DATA_HASH_ANNOTATION: data_hash(data),
                OWNER_UID_ANNOTATION: uid,
            },
            "ownerReferences": [
                {"kind": "InferenceThresholds", "name": "cr", "uid": uid, "controller": True}
            ],
        },
        "data": data,
    }


def test_node_events_without_a_change_wake_nobody() -> None:
    state = empty_operator_state()
    cr = state.enter(KEY)
    state.nodes.apply("n1", node_inputs(_node({"pool": "a"})))
    cr.selection = Selection(NodeSelector(match_labels={"pool": "a"}), 1)
    cr.in_flight = True  # even a CR mid-reconcile: it read these very labels

    def event(body: dict[str, Any] | None) -> bool:
        cr.trigger.clear()
        change = state.nodes.apply("n1", None if body is None else node_inputs(body))
        if change is not None:
            wakeups.node_changed(state, change)
        return cr.trigger.is_set()

    heartbeat = _node({"pool": "a"}, {"node.alpha.kubernetes.io/ttl": "0"})
    assert event(heartbeat) is False
    assert event(_node({"pool": "b"})) is True  # leaves the selection
    assert state.nodes["n1"].labels == {"pool": "b"}
    assert event(None) is True  # deleted
    assert "n1" not in state.nodes


def test_our_own_configmap_write_wakes_nobody_but_edits_do() -> None:
    state = empty_operator_state()
    cr = state.enter(KEY)
    data = {"thresholds.json": "{}\n", "LLM_MIN_TOKENS_PER_SECOND": "20"}
    cr.configmap_content = ("u1", data_hash(data), data_fingerprint(data))

    def wakes(body: dict[str, Any], type_: str = "MODIFIED") -> bool:
        cr.trigger.clear()
        wakeups.configmap_changed(state, "ns", body, deleted=type_ == "DELETED")
        return cr.trigger.is_set()

    assert wakes(_configmap(data)) is False  # the echo of what we wrote
    edited = _configmap(data)
    edited["data"] = {**data, "LLM_MIN_TOKENS_PER_SECOND": "1"}  # hand edit, hash stale
    assert wakes(edited) is True
    recomputed = _configmap({**data, "LLM_MIN_TOKENS_PER_SECOND": "1"})  # hash made to match
    assert wakes(recomputed) is True
    assert wakes(_configmap(data, uid="u2")) is True  # a re-created CR of the same name
    relabelled = _configmap(data)
    relabelled["metadata"]["labels"][OWNER_LABEL] = "someone-else"
    assert wakes(relabelled) is True
    assert wakes(_configmap(data), "DELETED") is True


def test_configmap_events_wake_every_cr_naming_it() -> None:
    """Not only the owner: a CR that could not write it, and our own ConfigMap stripped of
    its ownerReference (issue 15 case 6: repaired only at the periodic resync)."""
    state = empty_operator_state()
    owner, rival = state.enter(KEY), state.enter(("ns", "rival"))
    data = {"thresholds.json": "{}\n"}
    owner.configmap_content = ("u1", data_hash(data), data_fingerprint(data))
    owner.configmap_name = rival.configmap_name = "cr-thresholds"
    state.enter(("other-ns", "x")).configmap_name = "cr-thresholds"
    stripped = _configmap(data)
    stripped["metadata"]["ownerReferences"] = []
    for body, deleted in ((stripped, False), (_configmap(data), True)):
        for cr in state.crs.values():
            cr.trigger.clear()
        wakeups.configmap_changed(state, "ns", body, deleted=deleted)
        woken = {k for k, cr in state.crs.items() if cr.trigger.is_set()}
        assert woken == {KEY, ("ns", "rival")}
    assert state.rivals(KEY, "cr-thresholds") == ["rival"]


def test_claimants_follow_renames_and_deletions() -> None:
    """The (namespace, ConfigMap) -> CRs index stays exact as specs rename their
    ConfigMap and CRs go, including a CR re-created under the same name."""
    state = empty_operator_state()
    a, b = state.enter(("ns", "a")), state.enter(("ns", "b"))
    a.configmap_name = b.configmap_name = "shared"
    assert state.claimants("ns", "shared") == [("ns", "a"), ("ns", "b")]
    b.configmap_name = "own"
    assert state.claimants("ns", "shared") == [("ns", "a")]
    assert state.claimants("ns", "own") == [("ns", "b")]
    assert state.claimants("other", "own") == []
    state.forget(("ns", "b"), b)
    assert state.claimants("ns", "own") == []
    b.configmap_name = "late"  # a forgotten CR's last pass: no longer indexed
    assert state.claimants("ns", "late") == []
    state.crs.pop(("ns", "a"))  # deleted and re-created under the same name
    again = state.enter(("ns", "a"))
    again.configmap_name = "shared"
    state.forget(("ns", "a"), a)  # the old loop ends after the new one started
    assert state.claimants("ns", "shared") == [("ns", "a")]


def test_data_fingerprint_tells_data_apart_within_the_process() -> None:
    data = {"thresholds.json": "{}\n", "LLM_MIN_TOKENS_PER_SECOND": "20"}
    assert data_fingerprint(dict(reversed(list(data.items())))) == data_fingerprint(data)
    assert data_fingerprint({**data, "LLM_MIN_TOKENS_PER_SECOND": "2"}) != data_fingerprint(data)
    assert data_fingerprint({**data, "extra": ""}) != data_fingerprint(data)
    assert data_fingerprint({"k": ["not", "a", "string"]}) is None  # hostile: never ours
