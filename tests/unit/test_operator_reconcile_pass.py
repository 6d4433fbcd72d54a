"""One reconcile pass against an in-memory API: writes, status, Events, restarts, failures.

The pass is what the reconcile loop runs; the same flows run against a real apiserver in
tests/cluster/test_operator_lifecycle.py and test_operator_restart.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from operator_fakes import MemoryApi

from inference_thresholds.adaptation.histogram import Distribution
from inference_thresholds.adaptation.state import ClassObservation, Observation, Reading, advance
from inference_thresholds.api.adaptation import AdaptationStatus
from inference_thresholds.api.crd import InferenceThresholdsSpec
from inference_thresholds.controller.configmap import (
    DATA_HASH_ANNOTATION,
    MANAGED_BY_LABEL,
    data_fingerprint,
)
from inference_thresholds.controller.events import DecisionEvent
from inference_thresholds.controller.metrics import OperatorMetrics
from inference_thresholds.controller.node_index import NodeRecord, node_record
from inference_thresholds.controller.operator_state import CrState, OperatorState
from inference_thresholds.controller.policy_source import PolicySource
from inference_thresholds.controller.reconcile_pass import reconcile_once
from inference_thresholds.controller.settings import OperatorConfig

NOW = "2026-01-01T00:00:00Z"
NODES = {
    name: node_record(
        {
            "metadata": {"name": name, "labels": {"pool": pool}},
            "status": {"capacity": {"cpu": "16", "memory": memory}},
        }
    )
    for name, pool, memory in (("cpu-1", "cpu", "64Gi"), ("cpu-2", "cpu", "64Gi"))
}
SPEC: dict[str, Any] = {"model": {"preset": "llama-3.1-8b"}}


def _body(spec: dict[str, Any], status: dict[str, Any] | None = None, gen: int = 1) -> Any:
    meta = {"namespace": "ns", "name": "demo", "uid": "uid-1", "generation": gen}
    return {"metadata": meta, "spec": spec, "status": status or {}}


class Pass:
    """Runs reconcile_once the way the loop does, collecting what it posts."""

    def __init__(self, api: MemoryApi | None = None, cr: CrState | None = None) -> None:
        self.api = api or MemoryApi()
        self.cr = cr or CrState()
        self.metrics = OperatorMetrics()
        self.posted: list[DecisionEvent] = []

    def __call__(self, body: Any, nodes: dict[str, NodeRecord] = NODES) -> bool:
        def post(events: Sequence[DecisionEvent]) -> None:
            self.posted.extend(events)

        return asyncio.run(
            reconcile_once(
                body,
                self.cr,
                nodes=nodes,
                kube=self.api,
                policy=None,
                metrics=self.metrics,
                post=post,
                now=lambda: NOW,
            )
        )

    def reasons(self) -> list[str]:
        return [e.reason for e in self.posted]

    def status(self) -> dict[str, Any]:
        return self.api.statuses[("ns", "demo")]

    def condition(self, type_: str) -> tuple[str, str]:
        c = next(c for c in self.status()["conditions"] if c["type"] == type_)
        return c["status"], c["reason"]


def test_first_pass_writes_configmap_status_and_events() -> None:
    run = Pass()
    assert run(_body(SPEC)) is True
    cm = run.api.configmaps[("ns", "demo-thresholds")]
    doc = json.loads(cm["data"]["thresholds.json"])
    assert cm["metadata"]["labels"][MANAGED_BY_LABEL] == "inference-thresholds"
    assert [n for c in doc["classes"].values() for n in c["nodes"]] == ["cpu-1", "cpu-2"]
    assert "nodes" not in doc  # the per-node map of older operators is no longer written
    assert run.condition("Ready") == ("True", "Reconciled")
    assert run.status()["configMapRef"]["contentHash"] == doc["contentHash"]
    (event,) = run.posted
    assert event.reason == "ThresholdsComputed"
    assert "created ConfigMap demo-thresholds" in event.message
    assert "2 node(s) in 1 hardware class(es)" in event.message
    # What the next pass and the wakeups need: the selection and our own write.
    assert run.cr.selection is not None and run.cr.selection.count == 2
    assert run.cr.configmap_content == (
        "uid-1",
        cm["metadata"]["annotations"][DATA_HASH_ANNOTATION],
        data_fingerprint(cm["data"]),
    )
    assert run.cr.written is not None and run.cr.written[0] == "uid-1"
    assert (
        run.metrics.registry.get_sample_value(
            "inference_thresholds_configmap_writes_total", {"action": "created"}
        )
        == 1.0
    )


def test_unchanged_world_means_no_write_and_no_event_also_after_a_restart() -> None:
    first = Pass()
    first(_body(SPEC))
    stored = first.status()
    writes = len(first.api.writes)
    first.posted.clear()
    # The loop's next pass, the watch having delivered our status.
    assert first(_body(SPEC, stored)) is True
    assert len(first.api.writes) == writes and first.posted == []
    # A restarted operator: nothing in memory, the CR as stored.
    restarted = Pass(first.api)
    assert restarted(_body(SPEC, stored)) is True
    assert len(first.api.writes) == writes and restarted.posted == []


def test_a_spec_change_rewrites_and_says_what_moved() -> None:
    run = Pass()
    run(_body(SPEC))
    before = run.api.configmaps[("ns", "demo-thresholds")]["data"]["thresholds.json"]
    run.posted.clear()
    dev = {**SPEC, "context": {"environment": "development"}}
    assert run(_body(dev, run.status(), gen=2)) is True
    after = run.api.configmaps[("ns", "demo-thresholds")]["data"]["thresholds.json"]
    assert after != before and json.loads(after)["generation"] == 2
    changed = next(e for e in run.posted if e.reason == "ThresholdsChanged")
    assert "minTokensPerSecond" in changed.message and "→" in changed.message
    assert run.status()["observedGeneration"] == 2


def test_foreign_configmap_is_left_alone_and_reported_once() -> None:
    api = MemoryApi()
    foreign = {"metadata": {"name": "demo-thresholds", "namespace": "ns"}, "data": {"x": "1"}}
    api.create_configmap("ns", foreign)
    run = Pass(api)
    assert run(_body(SPEC)) is False  # a retry is due
    assert api.configmaps[("ns", "demo-thresholds")]["data"] == {"x": "1"}
    assert run.condition("ConfigMapSynced") == ("False", "ConfigMapConflict")
    assert run.condition("Ready") == ("False", "ConfigMapConflict")
    assert run.reasons().count("ConfigMapConflict") == 1
    run.posted.clear()
    assert run(_body(SPEC, run.status())) is False
    assert "ConfigMapConflict" not in run.reasons()  # no Event per retry


def test_hand_edited_configmap_is_repaired() -> None:
    run = Pass()
    run(_body(SPEC))
    cm = run.api.configmaps[("ns", "demo-thresholds")]
    cm["data"]["BITNET_MIN_TOKENS_PER_SECOND"] = "0"
    run.posted.clear()
    assert run(_body(SPEC, run.status())) is True
    assert (
        run.api.configmaps[("ns", "demo-thresholds")]["data"]["BITNET_MIN_TOKENS_PER_SECOND"] != "0"
    )
    assert run.reasons() == ["ConfigMapRepaired"]


def test_invalid_spec_touches_only_status() -> None:
    run = Pass()
    run(_body(SPEC))
    writes = list(run.api.writes)
    bad = {"model": {"preset": "no-such-model"}}
    assert run(_body(bad, run.status(), gen=2)) is True
    assert run.api.writes == [*writes, ("patch", "inferencethresholds demo status")]
    assert run.condition("Ready") == ("False", "InvalidSpec")
    assert run.reasons()[-1] == "InvalidSpec"
    assert run.cr.selection is not None and run.cr.selection.selector is None


def test_cr_deleted_during_the_pass() -> None:
    api = MemoryApi()
    api.deleted.add(("ns", "demo"))
    run = Pass(api)
    assert run(_body(SPEC)) is True  # nothing to retry: the loop is being stopped
    assert run.posted == [] and run.cr.written is None


def _learned(factor: float) -> AdaptationStatus:
    """A learned state after observing ``factor`` x the expected decode speed for a while."""
    spec = {**SPEC, "adaptation": {
        "enabled": True, "prometheus": {"url": "http://127.0.0.1:9"}, "interval": "10s",
        "halfLife": "30s", "minSamples": 2, "maxStepPercent": 10}}  # fmt: skip
    run = Pass()
    run(_body(spec))
    state = run.cr.adaptation
    assert state is not None and len(state.classes) == 1
    entry = state.classes[0]
    expected = entry.basis.expected_decode_tokens_per_second
    assert expected is not None
    aspec = InferenceThresholdsSpec.model_validate(spec).adaptation
    for i in range(30):
        t = 1_800_000_000.0 + 10 * i
        live = {"decode": Reading(t, Distribution.point(1 / (factor * expected)))}
        obs = Observation({entry.name: ClassObservation(live=live, queries={"decode": "q"})})
        state = advance(state, aspec, obs, t).state
    return state


def test_learned_state_reaches_the_configmap_and_status_in_one_pass() -> None:
    learned = _learned(1.5)
    spec = {**SPEC, "adaptation": {
        "enabled": True, "prometheus": {"url": "http://127.0.0.1:9"}, "interval": "10s",
        "halfLife": "30s", "minSamples": 2, "maxStepPercent": 10}}  # fmt: skip
    run = Pass(cr=CrState(adaptation=learned))
    assert run(_body(spec)) is True
    threshold = learned.classes[0].decode.threshold
    doc = json.loads(run.api.configmaps[("ns", "demo-thresholds")]["data"]["thresholds.json"])
    assert doc["effective"]["minTokensPerSecond"] == threshold
    assert run.status()["effective"]["minTokensPerSecond"] == threshold
    assert run.status()["adaptation"]["classes"][0]["decode"]["threshold"] == threshold
    assert run.cr.adaptation is not None  # rebased state handed back to the adaptation loop
    assert run.condition("Adapted")[0] == "True"
    # Switched off: learned state dropped from memory and status.
    assert run(_body(SPEC, run.status(), gen=2)) is True
    assert run.cr.adaptation is None and "adaptation" not in run.status()


def test_forget_drops_everything_held_for_a_cr_once() -> None:
    state = OperatorState(
        config=OperatorConfig(),
        kube=None,  # type: ignore[arg-type]  # no request is made
        policy=PolicySource(None),
        metrics=OperatorMetrics(),
    )
    cr = state.enter(("ns", "demo"))
    run = Pass(cr=cr)
    run.metrics = state.metrics
    run(_body(SPEC))
    assert (
        state.selections()
        and state.metrics.sample_value(
            "inference_thresholds_nodes_matched", {"namespace": "ns", "name": "demo"}
        )
        == 2.0
    )
    stale = CrState()
    state.forget(("ns", "demo"), stale)  # an older loop's state: the current one is kept
    assert state.crs[("ns", "demo")] is cr
    state.forget(("ns", "demo"), cr)
    assert state.crs == {} and state.selections() == {}
    assert (
        state.metrics.sample_value(
            "inference_thresholds_nodes_matched", {"namespace": "ns", "name": "demo"}
        )
        is None
    )
