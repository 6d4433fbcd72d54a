"""ConfigMap ownership is the controller ownerReference: foreign ConfigMaps are never written
(whatever their labels or our status say), conflicts are reported on both CRs, a rename
deletes the old ConfigMap, and hand edits are repaired even with a recomputed hash.

Regressions for issue 15 cases 5 and 6, against the in-memory API; the same flows run
against the real apiserver in tests/cluster/test_operator_hostile.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest
from operator_fakes import MemoryApi

from inference_thresholds.controller import plan as plan_module
from inference_thresholds.controller.configmap import (
    DATA_HASH_ANNOTATION,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    OWNER_LABEL,
    OWNER_UID_ANNOTATION,
    data_hash,
)
from inference_thresholds.controller.events import DecisionEvent
from inference_thresholds.controller.metrics import OperatorMetrics
from inference_thresholds.controller.node_index import node_record
from inference_thresholds.controller.operator_state import CrState
from inference_thresholds.controller.reconcile_pass import reconcile_once

NOW = "2026-01-01T00:00:00Z"
NODES = {"n": node_record({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "16"}}})}
CM = "shared-thresholds"


def _spec(cm: str = CM) -> dict[str, Any]:
    return {"model": {"preset": "llama-3.1-8b"}, "configMap": {"name": cm}}


class Cr:
    """One CR's reconciles against a shared in-memory API."""

    def __init__(self, api: MemoryApi, name: str, uid: str) -> None:
        self.api, self.name, self.uid = api, name, uid
        self.cr = CrState()
        self.posted: list[DecisionEvent] = []
        self.rivals: list[str] = []
        self.generation = 1
        self.nodes = NODES

    def run(self, spec: dict[str, Any], *, restarted: bool = False) -> bool:
        if restarted:
            self.cr = CrState()  # nothing in memory: the status as stored decides
        status = self.api.statuses.get(("ns", self.name), {})
        meta = {"namespace": "ns", "name": self.name, "uid": self.uid}
        body = {"metadata": {**meta, "generation": self.generation}, "spec": spec, "status": status}

        def post(events: Sequence[DecisionEvent]) -> None:
            self.posted.extend(events)

        return asyncio.run(
            reconcile_once(
                copy.deepcopy(body),
                self.cr,
                nodes=self.nodes,
                kube=self.api,
                policy=None,
                metrics=OperatorMetrics(),
                post=post,
                now=lambda: NOW,
                rivals=lambda _: self.rivals,
            )
        )

    def condition(self, type_: str) -> dict[str, Any]:
        conds = self.api.statuses[("ns", self.name)]["conditions"]
        found: dict[str, Any] = next(c for c in conds if c["type"] == type_)
        return found

    def reasons(self) -> list[str]:
        return [e.reason for e in self.posted]


def test_a_foreign_configmap_with_our_labels_is_never_written() -> None:
    api = MemoryApi()
    foreign = {
        "metadata": {
            "name": CM,
            "namespace": "ns",
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: "a"},
        },
        "data": {"user-key": "keep me"},
    }
    api.create_configmap("ns", foreign)
    a = Cr(api, "a", "uid-a")
    assert a.run(_spec()) is False
    assert api.configmaps[("ns", CM)]["data"] == {"user-key": "keep me"}
    assert a.condition("ConfigMapSynced")["reason"] == "ConfigMapConflict"
    assert "no controller ownerReference" in a.condition("Ready")["message"]
    # Even a status that claims it (as after an earlier write) is no proof.
    assert a.run(_spec(), restarted=True) is False
    assert api.configmaps[("ns", CM)]["data"] == {"user-key": "keep me"}
    assert a.reasons().count("ConfigMapConflict") == 1


def test_two_crs_naming_one_configmap_both_say_so_and_nothing_flips() -> None:
    api = MemoryApi()
    a, b = Cr(api, "a", "uid-a"), Cr(api, "b", "uid-b")
    b.generation = 2  # a different spec: its document differs from a's
    spec_b = {**_spec(), "context": {"environment": "development"}}
    assert a.run(_spec()) is True
    written = copy.deepcopy(api.configmaps[("ns", CM)])
    a.rivals, b.rivals = ["b"], ["a"]
    assert b.run(spec_b) is False
    assert "controlled by InferenceThresholds a" in b.condition("Ready")["message"]
    assert b.condition("ConfigMapSynced")["status"] == "False"
    assert a.run(_spec()) is True
    assert a.condition("Ready")["status"] == "True"
    synced = a.condition("ConfigMapSynced")
    assert (
        synced["reason"] == "NameShared"
        and "InferenceThresholds b also names it" in (synced["message"])
    )
    assert a.reasons().count("ConfigMapNameShared") == 1 and "ConfigMapConflict" in b.reasons()
    # Restarts in any order, b's status naming the ConfigMap from a former life: no flip.
    api.statuses[("ns", "b")]["configMapRef"] = {"name": CM, "contentHash": "old"}
    for cr, spec in ((b, spec_b), (a, _spec()), (b, spec_b)):
        cr.run(spec, restarted=True)
    assert api.configmaps[("ns", CM)]["data"] == written["data"]
    assert a.reasons().count("ConfigMapNameShared") == 1  # not re-posted per pass


def test_an_owner_reference_removed_by_hand_is_restored() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.run(_spec())
    api.configmaps[("ns", CM)]["metadata"]["ownerReferences"] = []
    assert a.run(_spec()) is True
    refs = api.configmaps[("ns", CM)]["metadata"]["ownerReferences"]
    assert [(r["uid"], r["controller"]) for r in refs] == [("uid-a", True)]
    assert "lost its ownerReference" in next(
        e.message for e in a.posted if e.reason == "ConfigMapRepaired"
    )


def test_a_hand_edit_with_a_recomputed_hash_is_repaired() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.run(_spec())
    cm = api.configmaps[("ns", CM)]
    good = dict(cm["data"])
    cm["data"]["BITNET_MIN_TOKENS_PER_SECOND"] = "0.001"
    cm["metadata"]["annotations"][DATA_HASH_ANNOTATION] = data_hash(cm["data"])
    a.posted.clear()
    assert a.run(_spec()) is True
    assert api.configmaps[("ns", CM)]["data"] == good
    assert a.reasons() == ["ConfigMapRepaired"]


def test_a_configmap_from_before_the_owner_uid_annotation_is_updated_not_repaired() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.run(_spec())
    del api.configmaps[("ns", CM)]["metadata"]["annotations"][OWNER_UID_ANNOTATION]
    a.posted.clear()
    assert a.run(_spec()) is True
    assert a.reasons() == ["ConfigMapWritten"]


def test_a_rename_deletes_the_old_configmap_and_only_its_own() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.run(_spec("first"))
    a.generation = 2
    assert a.run(_spec("second")) is True
    assert ("ns", "first") not in api.configmaps and ("ns", "second") in api.configmaps
    assert "deleted ConfigMap first" in next(
        e.message for e in a.posted if e.reason == "ConfigMapDeleted"
    )
    # Renamed again, while someone else took over the old name meanwhile: left alone.
    api.configmaps[("ns", "second")]["metadata"]["ownerReferences"] = [
        {"kind": "InferenceThresholds", "name": "z", "uid": "uid-z", "controller": True}
    ]
    a.generation = 3
    assert a.run(_spec("third")) is True
    assert ("ns", "second") in api.configmaps


def test_contradicting_overrides_are_a_condition_and_one_event() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    spec = {**_spec(), "overrides": {"maxLatencyMs": 100, "maxTimeToFirstTokenMs": 500}}
    assert a.run(spec) is True
    warning = a.condition("SpecWarnings")
    assert warning["reason"] == "ContradictoryValues" and "maxLatencyMs (100)" in warning["message"]
    assert "1 spec warning(s)" in a.condition("Ready")["message"]
    assert a.run(spec, restarted=True) is True
    assert a.reasons().count("SpecWarning") == 1
    assert a.run(_spec()) is True  # fixed: the condition goes away
    assert "SpecWarnings" not in {c["type"] for c in api.statuses[("ns", "a")]["conditions"]}


def test_an_invalid_spec_with_a_huge_value_is_reported_once_across_restarts() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    spec = {"model": {"preset": "p" * 1_000_000}}  # an older CRD let it through
    a.run(spec)
    assert a.condition("Ready")["reason"] == "InvalidSpec"
    assert len(a.condition("Ready")["message"]) < 4000
    for _ in range(2):
        a.run(spec, restarted=True)
    assert a.reasons().count("InvalidSpec") == 1


def _many_nodes(count: int) -> dict[str, Any]:
    # Distinct core counts: one hardware class per node (as hostile agents could make).
    return {
        f"n{i}": node_record(
            {"metadata": {"name": f"n{i}"}, "status": {"capacity": {"cpu": str(i + 1)}}}
        )
        for i in range(count)
    }


def test_many_classes_keep_status_and_configmap_within_what_the_apiserver_takes() -> None:
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.nodes = _many_nodes(600)
    assert a.run(_spec()) is True
    status = api.statuses[("ns", "a")]
    assert len(status["classes"]) == 50
    assert status["effectiveClass"] in {c["name"] for c in status["classes"]}
    assert "status.classes lists 50" in a.condition("NodesMatched")["message"]
    assert len(json.dumps(status)) < 200_000
    cm = api.configmaps[("ns", CM)]
    assert sum(len(v) for v in cm["data"].values()) < 1_000_000
    doc = json.loads(cm["data"]["thresholds.json"])
    assert len(doc["classes"]) == 600
    assert sum(len(c["nodes"]) for c in doc["classes"].values()) == 600
    assert doc["classes"][status["effectiveClass"]]["decisions"][0].startswith("hardware.")
    others = [c for name, c in doc["classes"].items() if name != status["effectiveClass"]]
    assert all(c["decisions"][0].startswith("decisions omitted") for c in others)


def test_a_document_no_configmap_can_hold_is_reported_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plan_module, "DOCUMENT_BUDGET", 5_000)
    api = MemoryApi()
    a = Cr(api, "a", "uid-a")
    a.nodes = _many_nodes(20)
    assert a.run(_spec()) is False
    assert ("ns", CM) not in api.configmaps
    ready = a.condition("Ready")
    assert ready["reason"] == "ConfigMapTooLarge" and "20 hardware classes" in ready["message"]
    assert a.reasons().count("ConfigMapTooLarge") == 1
