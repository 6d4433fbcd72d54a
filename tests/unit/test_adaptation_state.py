"""Interval transitions per class: rebase, fetch (fake Prometheus API), advance, apply.

The real Prometheus runs the same flows in tests/cluster/test_adaptation_prometheus.py.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from inference_thresholds.adaptation import presets
from inference_thresholds.adaptation.histogram import Distribution
from inference_thresholds.adaptation.prometheus import (
    PrometheusResponseError,
    PrometheusUnreachable,
    Sample,
    Series,
)
from inference_thresholds.adaptation.state import (
    MAX_SEED_POINTS,
    ClassObservation,
    Interval,
    Observation,
    Reading,
    Target,
    advance,
    apply,
    basis_from,
    fetch,
    rebase,
)
from inference_thresholds.api import Expected, Thresholds
from inference_thresholds.api.adaptation import AdaptationSpec, AdaptationStatus

T0 = 1_800_000_000.0
EXPECTED = Expected(decode_tokens_per_second=100.0, time_to_first_token_ms=200.0)
COMPUTED = Thresholds(
    min_tokens_per_second=50.0, max_time_to_first_token_ms=1000.0, max_memory_usage_mb=8000.0
)
BASIS = basis_from(EXPECTED, COMPUTED)
LADDER = [0.001 * 1.25**i for i in range(50)]  # bucket bounds, seconds


def _spec(**kw: object) -> AdaptationSpec:
    base: dict[str, object] = {
        "enabled": True,
        "prometheus": {"url": "http://127.0.0.1:9"},
        "interval": "10s",
        "halfLife": "100s",
        "minSamples": 5,
        "maxStepPercent": 10,
        "history": "0s",
        "labelMatchers": [{"label": "model_name", "value": 'llama "8b"'}],
    }
    base.update(kw)
    return AdaptationSpec.model_validate(base)


def _obs(t: float, decode: float | None, ttft_ms: float | None, cls: str = "c") -> Observation:
    """Decode tok/s and TTFT ms of one class as point distributions (seconds)."""
    live = {
        "decode": Reading(t, None if decode is None else Distribution.point(1 / decode)),
        "ttft": Reading(t, None if ttft_ms is None else Distribution.point(ttft_ms / 1000)),
    }
    return Observation({cls: ClassObservation(live=live, queries={"decode": "q1", "ttft": "q2"})})


def _run(
    spec: AdaptationSpec, state: AdaptationStatus, values: list[tuple[float, float]], t: float
) -> tuple[AdaptationStatus, list[Any], float]:
    moves: list[Any] = []
    for decode, ttft_ms in values:
        step = advance(state, spec, _obs(t, decode, ttft_ms), t)
        state = step.state
        moves += step.moves
        t += spec.interval_seconds
    return state, moves, t


def _fresh(spec: AdaptationSpec, name: str = "c") -> AdaptationStatus:
    state, notes = rebase(None, spec, [(name, BASIS)])
    assert notes == []
    return state


def test_presets_read_old_and_new_metric_names() -> None:
    spec = _spec()
    decode = presets.signal_query(spec, "decode")
    assert decode is not None and decode.kind is presets.Kind.DISTRIBUTION
    rendered = presets.render(decode.template, spec)
    assert rendered == (
        'sum by (le) (rate({__name__=~"vllm[:_]inter_token_latency_seconds_bucket",'
        'model_name="llama \\"8b\\""}[5m])) or '
        'sum by (le) (rate({__name__=~"vllm[:_]time_per_output_token_seconds_bucket",'
        'model_name="llama \\"8b\\""}[5m]))'
    )
    assert decode.metrics == (
        "vllm:inter_token_latency_seconds_count",
        "vllm:time_per_output_token_seconds_count",
    )
    sglang = presets.signal_query(_spec(source="sglang"), "ttft")
    assert sglang is not None and "sglang[:_]time_to_first_token_seconds_bucket" in sglang.template
    llama = presets.signal_query(_spec(source="llama-cpp-server"), "decode")
    assert llama is not None and llama.kind is presets.Kind.LEVEL
    assert '"llamacpp[:_]tokens_predicted_seconds_total"' in llama.template
    assert presets.signal_query(_spec(source="bitnet-cpp"), "ttft") is None
    custom = presets.signal_query(
        _spec(queries={"decodeTokensPerSecond": "sum(x{$matchers})"}), "decode"
    )
    assert custom == presets.SignalQuery(presets.Kind.LEVEL, "sum(x{$matchers})", ())
    # alert-rule levels: decode tok/s from the new name, else the old one
    levels = presets.queries(spec)
    assert levels.decode_tokens_per_second is not None
    assert levels.decode_tokens_per_second.count(" or ") == 1
    assert levels.time_to_first_token_seconds is not None
    assert levels.time_to_first_token_seconds.startswith("histogram_quantile($quantile, sum by")


def test_learning_then_tightening_within_step_bound() -> None:
    spec = _spec()
    state = _fresh(spec)
    assert state.classes[0].thresholds.min_tokens_per_second == 50.0
    state, moves, t = _run(spec, state, [(95.0, 150.0)] * 4, T0)
    assert moves == [] and state.reason == "Learning"
    state, moves, t = _run(spec, state, [(95.0, 150.0)] * 30, t)
    ttft = [m for m in moves if m.signal.name == "ttft"]
    assert ttft, state.message
    for m in ttft:
        assert m.new >= m.old * 0.9 - 1e-9 and m.new < m.old
    entry = state.classes[0]
    assert entry.ttft.threshold is not None and entry.ttft.threshold < 1000.0
    assert entry.ttft.threshold >= 750.0 * 0.95  # observed x slack = 150 x 5 (grid: 5 %)
    assert entry.decode.threshold == 50.0  # 95 tok/s x 0.5 < 50: nothing to tighten
    assert entry.ttft.observed == pytest.approx(150.0, rel=0.05)


def test_recommend_mode_names_what_it_would_do() -> None:
    spec = _spec(mode="Recommend")
    state, moves, _ = _run(spec, _fresh(spec), [(99.0, 100.0)] * 30, T0)
    assert moves and state.reason in ("Recommended", "Holding")
    assert state.message.startswith("mode Recommend (the ConfigMap keeps computed thresholds)")


def test_regression_holds_thresholds_and_errors_hold_them_too() -> None:
    spec = _spec()
    state, _, t = _run(spec, _fresh(spec), [(99.0, 150.0)] * 40, T0)
    before = state.classes[0].thresholds
    state, moves, t = _run(spec, state, [(10.0, 5000.0)] * 200, t)
    assert moves == []
    assert state.classes[0].thresholds == before and state.reason == "Holding"
    down = advance(state, spec, Observation(error=PrometheusUnreachable("http://x: refused")), t)
    assert down.moves == [] and not down.state.healthy
    assert down.state.reason == "PrometheusUnreachable" and "thresholds held" in down.state.message
    assert down.state.classes == state.classes


def test_no_data_decays_confidence_and_does_not_move() -> None:
    spec = _spec()
    state, _, t = _run(spec, _fresh(spec), [(99.0, 150.0)] * 10, T0)
    after = advance(state, spec, _obs(t + 90, None, None), t + 90).state
    assert after.reason == "NoData"
    old, new = state.classes[0], after.classes[0]
    assert math.isclose(new.decode.confidence, old.decode.confidence / 2, rel_tol=0.01)
    assert new.thresholds == old.thresholds


def test_rebase_reset_token_basis_changes_and_classes() -> None:
    spec = _spec()
    state, _, _ = _run(spec, _fresh(spec), [(99.0, 100.0)] * 40, T0)
    tightened = state.classes[0].ttft.threshold
    assert tightened is not None and tightened < 1000.0
    again, notes = rebase(state, spec, [("c", BASIS)])
    assert notes == [] and again == state
    # computed threshold changes (strictness): learned value restarts, observations kept
    looser = basis_from(
        EXPECTED, COMPUTED.model_copy(update={"max_time_to_first_token_ms": 1500.0})
    )
    rebased, notes = rebase(state, spec, [("c", looser)])
    entry = rebased.classes[0]
    assert entry.ttft.threshold == 1500.0 and entry.ttft.samples == state.classes[0].ttft.samples
    assert any("computed threshold changed" in n for n in notes)
    # physical expectation changes (new hardware): observations discarded, no history reload
    faster = basis_from(EXPECTED.model_copy(update={"time_to_first_token_ms": 100.0}), COMPUTED)
    rebased, notes = rebase(state, spec, [("c", faster)])
    assert rebased.classes[0].ttft.samples == 0 and rebased.classes[0].seeded
    # resetToken: everything back to computed, and history is not loaded again
    reset, notes = rebase(state, _spec(resetToken="2026-11-28"), [("c", BASIS)])
    assert reset.classes[0].ttft.samples == 0 and reset.classes[0].seeded
    assert reset.classes[0].thresholds.max_time_to_first_token_ms == 1000.0
    assert "resetToken" in notes[0]
    # floors tightened in the spec: clamped right away
    floored, _ = rebase(state, _spec(floors={"minTokensPerSecond": 60}), [("c", BASIS)])
    assert floored.classes[0].decode.threshold == 60.0
    # deployment-wide: the one entry follows the effective class under its new name
    renamed, _ = rebase(state, spec, [("other-class", BASIS)])
    assert [c.name for c in renamed.classes] == ["other-class"]
    assert renamed.classes[0].ttft.samples == state.classes[0].ttft.samples
    # per class: a new class starts fresh and loads its history; a gone one is dropped
    per_class = _spec(nodeLabel="node")
    two, _ = rebase(state, per_class, [("c", BASIS), ("new", BASIS)])
    assert [c.name for c in two.classes] == ["c", "new"]
    assert two.classes[0] == state.classes[0] and not two.classes[1].seeded
    one, _ = rebase(two, per_class, [("new", BASIS)])
    assert [c.name for c in one.classes] == ["new"]
    # mode switch is reported
    _, notes = rebase(state, _spec(mode="Recommend"), [("c", BASIS)])
    assert notes == [
        "mode Apply -> Recommend: the ConfigMap keeps computed thresholds; learned ones "
        "are recommendations"
    ]


def test_apply_respects_overrides_and_keeps_other_fields() -> None:
    entry = _fresh(_spec()).classes[0]
    entry = entry.model_copy(
        update={
            "decode": entry.decode.model_copy(update={"threshold": 60.0}),
            "ttft": entry.ttft.model_copy(update={"threshold": 800.0}),
        }
    )
    out = apply(COMPUTED, entry)
    assert out.min_tokens_per_second == 60.0 and out.max_time_to_first_token_ms == 800.0
    assert out.max_memory_usage_mb == 8000.0
    assert apply(COMPUTED, entry, frozenset({"min_tokens_per_second"})).min_tokens_per_second == 50
    assert apply(COMPUTED, None) == COMPUTED


def test_state_survives_a_restart_via_status_wire() -> None:
    spec = _spec()
    state, _, t = _run(spec, _fresh(spec), [(99.0, 120.0)] * 20, T0)
    restored = AdaptationStatus.model_validate(state.wire())
    a = advance(state, spec, _obs(t, 99.0, 120.0), t).state
    b = advance(restored, spec, _obs(t, 99.0, 120.0), t).state
    assert a.classes[0].thresholds == pytest.approx(b.classes[0].thresholds)
    assert a.classes[0].ttft.samples == b.classes[0].ttft.samples


# --- fetch against a fake Prometheus HTTP API --------------------------------------------


class FakePrometheus:
    """Answers the preset queries from per-node speeds: histograms summed over the nodes
    the query's node matcher names (or all), as Prometheus' sum by (le) would."""

    def __init__(self, itl: dict[str, float], ttft: dict[str, float], node_label: str = "node"):
        self.itl, self.ttft, self.node_label = itl, ttft, node_label
        self.calls: list[tuple[str, Any]] = []
        self.exists = True

    def _nodes(self, promql: str) -> list[str]:
        found = re.search(r'node=~"([^"]*)"', promql)
        if found is None:
            return sorted(self.itl)
        names = [n.replace("\\\\.", ".") for n in found.group(1).split("|")]
        return [n for n in names if n in self.itl]

    def _buckets(self, promql: str) -> list[Sample]:
        values = self.itl if "inter_token" in promql else self.ttft
        chosen = [values[n] for n in self._nodes(promql)]
        if not chosen:
            return []
        return [
            Sample({"le": repr(le)}, 0.0, float(sum(v <= le for v in chosen))) for le in LADDER
        ] + [Sample({"le": "+Inf"}, 0.0, float(len(chosen)))]

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        self.calls.append(("query", promql))
        return self._buckets(promql)

    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        self.calls.append(("range", (start, end, step)))
        times = [start + i * step for i in range(int((end - start) // step) + 1)]
        return [Series(s.labels, [(t, s.value) for t in times]) for s in self._buckets(promql)]

    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]:
        self.calls.append(("series", selectors))
        if not self.exists:
            return []
        return [{"__name__": "vllm:inter_token_latency_seconds_count", "pod": "p"}]


def test_fetch_per_class_with_node_matchers_and_history_once() -> None:
    spec = _spec(nodeLabel="node", history="1h")
    api = FakePrometheus(
        itl={"a.1": 0.02, "a.2": 0.02, "b": 0.01}, ttft={"a.1": 0.3, "a.2": 0.3, "b": 0.1}
    )
    targets = [Target("A", ("a.1", "a.2"), seeded=False), Target("B", ("b",), seeded=True)]
    obs = fetch(spec, targets, api, T0)
    assert obs.error is None and obs.missing is None
    a, b = obs.classes["A"], obs.classes["B"]
    assert 'node=~"a\\\\.1|a\\\\.2"' in a.queries["decode"]  # escaped regex, PromQL string
    decode_a = a.live["decode"].dist
    decode_b = b.live["decode"].dist
    assert decode_a is not None and decode_a.quantile(0.5) == pytest.approx(0.02, rel=0.26)
    assert decode_b is not None and decode_b.quantile(0.5) == pytest.approx(0.01, rel=0.26)
    # history: only A (not seeded yet), bounded to MAX_SEED_POINTS, step >= interval
    ranges = [c[1] for c in api.calls if c[0] == "range"]
    assert len(ranges) == 2  # decode and ttft of class A
    start, end, step = ranges[0]
    assert end - start == pytest.approx(3600 - 10) and step >= spec.interval_seconds
    assert (end - start) / step <= MAX_SEED_POINTS
    assert len(a.history["decode"]) >= 300 and a.seed_attempted and not b.seed_attempted


def test_metric_not_found_no_data_and_node_label_missing() -> None:
    spec = _spec(nodeLabel="node")
    idle = FakePrometheus(itl={}, ttft={})
    obs = fetch(spec, [Target("A", ("x",), seeded=True)], idle, T0)
    assert obs.missing == "NodeLabelMissing" and "relabel" in obs.missing_message
    idle.exists = False
    obs = fetch(spec, [Target("A", ("x",), seeded=True)], idle, T0)
    assert obs.missing == "MetricNotFound"
    assert "vllm:inter_token_latency_seconds_count or vllm:time_per_output_token_seconds_count" in (
        obs.missing_message
    )
    series_call = next(c for c in idle.calls if c[0] == "series")
    assert '{__name__=~"vllm[:_]time_to_first_token_seconds_count",model_name=' in str(series_call)
    after = advance(_fresh(spec, "A"), spec, obs, T0)
    assert not after.state.healthy and after.state.reason == "MetricNotFound"
    # metrics exist, just no traffic now: NoData (healthy)
    idle.exists = True
    plain = _spec()
    obs = fetch(plain, [Target("A", (), seeded=True)], idle, T0)
    assert obs.missing is None
    assert advance(_fresh(plain, "A"), plain, obs, T0).state.reason == "NoData"


def test_hostile_answers_are_errors_not_crashes() -> None:
    class Two(FakePrometheus):
        def query(self, promql: str, at: float | None = None) -> list[Sample]:
            return [Sample({"pod": "a"}, 0, 1.0), Sample({"pod": "b"}, 0, 2.0)]

    spec = _spec(source="llama-cpp-server")
    obs = fetch(spec, [Target("A", (), seeded=True)], Two({}, {}), T0)
    assert isinstance(obs.error, PrometheusResponseError) and "2 series" in str(obs.error)

    class Many(FakePrometheus):
        def query(self, promql: str, at: float | None = None) -> list[Sample]:
            return [Sample({"le": str(i)}, 0, float(i)) for i in range(1000)]

    obs = fetch(_spec(), [Target("A", (), seeded=True)], Many({}, {}), T0)
    assert isinstance(obs.error, PrometheusResponseError) and "1000 buckets" in str(obs.error)


def test_history_replays_through_the_rule_at_creation() -> None:
    """A new resource with an hour of better-than-expected history recommends at once."""
    spec = _spec(history="1h", minSamples=5, maxStepPercent=5)
    api = FakePrometheus(itl={"n": 1 / 180.0}, ttft={"n": 0.05})  # 1.8x faster, 4x quicker
    state = _fresh(spec)
    assert not state.classes[0].seeded
    step: Interval = advance(state, spec, fetch(spec, [Target("c", (), False)], api, T0), T0)
    entry = step.state.classes[0]
    assert entry.seeded and step.seeded and "samples from 1h" in step.seeded[0]
    seeded_moves = [m for m in step.moves if m.seeded]
    assert {m.signal.name for m in seeded_moves} == {"decode", "ttft"}
    # far beyond one 5 % step: the hour of history moved it as a running operator would have
    assert entry.decode.threshold is not None and entry.decode.threshold > 50.0 * 1.05**3
    assert entry.ttft.threshold is not None and entry.ttft.threshold < 1000.0 * 0.95**3
    assert entry.decode.samples > 300 and 0 < entry.decode.confidence <= 1
    # the next interval does not load history again
    again = fetch(spec, [Target("c", (), entry.seeded)], api, T0 + 10)
    assert not again.classes["c"].history and not again.classes["c"].seed_attempted


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"source": "custom"}, "source custom needs"),
        ({"interval": "5 minutes"}, "interval"),
        ({"maxStepPercent": 0}, "maxStepPercent"),
        ({"floors": {"minTokensPerSecond": 9}, "ceilings": {"minTokensPerSecond": 5}}, "floors"),
        ({"labelMatchers": [{"label": "bad-name", "value": "x"}]}, "label"),
        ({"prometheus": {"url": "prometheus:9090"}}, "url"),
        ({"history": "31d"}, "history must be at most 30d"),
        ({"decodeQuantile": 1}, "decodeQuantile"),
        ({"mode": "Auto"}, "mode"),
        ({"nodeLabel": "node-name"}, "nodeLabel"),
    ],
)
def test_bad_spec_names_the_field(patch: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        _spec(**patch)


def test_a_class_of_many_nodes_keeps_status_within_its_schema() -> None:
    spec = _spec(nodeLabel="node")
    nodes = tuple(f"gpu-node-{i:04d}.cluster.example.com" for i in range(1000))
    api = FakePrometheus(itl={n: 0.02 for n in nodes}, ttft={n: 0.3 for n in nodes})
    obs = fetch(spec, [Target("big", nodes, seeded=True)], api, T0)
    assert len(obs.classes["big"].queries["decode"]) > 40_000  # sent whole (as a POST)
    after = advance(_fresh(spec, "big"), spec, obs, T0).state
    shown = after.classes[0].decode.query
    assert len(shown) <= 2048 and shown.endswith("characters)")
    AdaptationStatus.model_validate(after.wire())  # what the apiserver would accept
