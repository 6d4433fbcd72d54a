"""One adaptation interval as functions over ``AdaptationStatus`` (kept in CR status).

State is per hardware class (``ClassAdaptation``): with ``nodeLabel`` every feasible
class learns from the series of its own nodes, else the effective class learns from the
whole deployment.

- ``basis_from`` — the engine's numbers (expectation, computed threshold) of a class;
  ``rebase`` reconciles learned state with them, the spec and ``resetToken``.
- ``fetch`` — the only I/O: for each class, the history (a range query, once, when the
  class first adapts) and this interval's distribution of each signal; when nothing at
  all comes back, the series endpoint tells ``MetricNotFound`` from ``NoData``. A value no
  deployment can show (negative, beyond the signal's ``physical_max``) is an error
  (``ImplausibleSample``), not an observation.
- ``advance`` — fold the history, then the interval, into the decayed histograms and
  move thresholds by the rule in ``rule.py``: history replays through the rule, so a new
  resource with a day of history starts where a day-old one would be.
- ``apply`` — the thresholds pods get: computed ones with a class's learned fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..api import Expected, Thresholds
from ..api.adaptation import (
    AdaptationBasis,
    AdaptationMode,
    AdaptationSpec,
    AdaptationStatus,
    ClassAdaptation,
    LabelMatcher,
    MatchOperator,
    SignalState,
)
from . import aggregate, histogram, presets, rule
from .histogram import Distribution
from .prometheus import PrometheusError, PrometheusResponseError, Sample, Series, one_sample

MAX_SEED_POINTS = 500  # points per range query; the step grows to fit the history
MAX_CLASSES = 16  # classes adapted per resource (each costs a query per signal)
MISSING_LOOKBACK = 3600.0  # the series check looks at least this far back
# Learned values come from bounded samples; anything beyond this in a stored state (a
# hand-edited status) is junk, not history.
STATE_VALUE_MAX = 1e12


class ImplausibleSample(PrometheusError):
    """A query answered a number no deployment can show: not folded in, thresholds held."""

    reason = "ImplausibleSample"


@dataclass(frozen=True)
class Signal:
    name: str  # attribute on ClassAdaptation
    threshold_field: str  # attribute on Thresholds
    alias: str  # wire name of the threshold
    direction: rule.Direction
    expected_field: str  # on AdaptationBasis
    computed_field: str  # on AdaptationBasis
    quantile_field: str  # on AdaptationSpec
    unit: str
    physical_max: float  # threshold units: a larger level is not an observation

    def level(self, seconds: float) -> float:
        """A quantile of the history (seconds) in threshold units."""
        if self.name == "decode":
            return 1.0 / seconds if seconds > 0 else math.inf
        return seconds * 1000.0

    def seconds(self, value: float) -> float | None:
        """A level query's number (tok/s, or seconds for TTFT) on the history's axis."""
        if not math.isfinite(value) or value <= 0:
            return None
        return 1.0 / value if self.name == "decode" else value


SIGNALS = (
    Signal(
        "decode",
        "min_tokens_per_second",
        "minTokensPerSecond",
        rule.Direction.MIN,
        "expected_decode_tokens_per_second",
        "computed_min_tokens_per_second",
        "decode_quantile",
        "tok/s",
        # Per sequence: the fastest published single-stream decode is ~2,500 tok/s
        # (wafer-scale and LPU inference services, 2024-25); 40x that is not a measurement.
        1e5,
    ),
    Signal(
        "ttft",
        "max_time_to_first_token_ms",
        "maxTimeToFirstTokenMs",
        rule.Direction.MAX,
        "expected_time_to_first_token_ms",
        "computed_max_time_to_first_token_ms",
        "ttft_quantile",
        "ms",
        # A first token a day after the request is no longer a latency anyone measures.
        86_400_000.0,
    ),
)
BASIS_TOLERANCE = 0.01  # relative change of the expectation that invalidates observations


def basis_from(expected: Expected, computed: Thresholds) -> AdaptationBasis:
    return AdaptationBasis(
        expected_decode_tokens_per_second=expected.decode_tokens_per_second,
        computed_min_tokens_per_second=computed.min_tokens_per_second,
        expected_time_to_first_token_ms=expected.time_to_first_token_ms,
        computed_max_time_to_first_token_ms=computed.max_time_to_first_token_ms,
    )


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is not b
    return abs(a - b) > BASIS_TOLERANCE * max(abs(a), abs(b))


def _inputs(
    sig: Signal, spec: AdaptationSpec, basis: AdaptationBasis, s: SignalState
) -> rule.Inputs | None:
    expected = getattr(basis, sig.expected_field)
    computed = getattr(basis, sig.computed_field)
    if expected is None or computed is None or expected <= 0 or computed <= 0:
        return None
    return rule.Inputs(
        direction=sig.direction,
        expected=expected,
        computed=computed,
        current=s.threshold,
        observed=s.observed,
        confidence=s.confidence,
        samples=s.samples,
        min_samples=spec.min_samples,
        max_step=spec.max_step_percent / 100.0,
        floor=getattr(spec.floors, sig.threshold_field),
        ceiling=getattr(spec.ceilings, sig.threshold_field),
    )


def _thresholds(entry: ClassAdaptation) -> Thresholds:
    return Thresholds(
        **{sig.threshold_field: getattr(entry, sig.name).threshold for sig in SIGNALS}
    )


# --- rebase ------------------------------------------------------------------------------


def _rebase_class(
    entry: ClassAdaptation, spec: AdaptationSpec, basis: AdaptationBasis
) -> tuple[ClassAdaptation, list[str]]:
    notes: list[str] = []
    updates: dict[str, object] = {"basis": basis}
    for sig in SIGNALS:
        s: SignalState = getattr(entry, sig.name)
        if not _sound(s):
            notes.append(
                f"{entry.name}: {sig.alias}: learned state held a non-finite or absurd "
                "number; discarded"
            )
            s = SignalState()
        old_e, new_e = getattr(entry.basis, sig.expected_field), getattr(basis, sig.expected_field)
        old_c, new_c = getattr(entry.basis, sig.computed_field), getattr(basis, sig.computed_field)
        if _differs(old_e, new_e) and (s.samples or s.threshold is not None):
            notes.append(
                f"{entry.name}: {sig.alias}: physical expectation changed {old_e} -> {new_e}; "
                "observations and learned value discarded"
            )
            s = SignalState()
            updates["seeded"] = True  # Prometheus' history describes the old hardware/model
        elif _differs(old_c, new_c) and s.threshold is not None:
            notes.append(
                f"{entry.name}: {sig.alias}: computed threshold changed {old_c} -> {new_c}; "
                "learned value restarts from it (observations kept)"
            )
            s = s.model_copy(update={"threshold": None, "last_move_time": None})
        inputs = _inputs(sig, spec, basis, s)
        if inputs is None:
            s = s.model_copy(update={"threshold": None})
        else:
            # Bounds may have changed (floors/ceilings edited): clamp, or start loosest.
            lo, hi = rule.bounds(inputs)
            cur = s.threshold if s.threshold is not None else rule.start(inputs)
            s = s.model_copy(update={"threshold": min(max(cur, lo), hi)})
        updates[sig.name] = s
    entry = entry.model_copy(update=updates)
    return entry.model_copy(update={"thresholds": _thresholds(entry)}), notes


def _sound(s: SignalState) -> bool:
    """Every number of the learned state is finite and within STATE_VALUE_MAX."""
    values = (s.weight, s.observed, s.last_value, s.target, s.threshold)
    return all(v is None or (math.isfinite(v) and abs(v) <= STATE_VALUE_MAX) for v in values)


def rebase(
    state: AdaptationStatus | None,
    spec: AdaptationSpec,
    classes: Sequence[tuple[str, AdaptationBasis]],
) -> tuple[AdaptationStatus, list[str]]:
    """Learned state for exactly ``classes`` (name, basis), in line with the spec.

    A class keeps its entry by name; deployment-wide (no ``nodeLabel``) there is one
    entry, kept when the effective class changes name (the basis decides what survives).
    New entries load history once (``seeded`` False); after a reset they do not.
    """
    notes: list[str] = []
    reset = False
    if state is None:
        state = AdaptationStatus(reset_token=spec.reset_token, mode=spec.mode)
    elif state.reset_token != spec.reset_token:
        notes.append("resetToken changed: learned state discarded, thresholds back to computed")
        state = AdaptationStatus(reset_token=spec.reset_token, mode=spec.mode)
        reset = True
    if state.mode != spec.mode:
        notes.append(
            f"mode {state.mode.value} -> {spec.mode.value}: "
            + (
                "learned thresholds now reach the ConfigMap"
                if spec.mode is AdaptationMode.APPLY
                else "the ConfigMap keeps computed thresholds; learned ones are recommendations"
            )
        )
    entries: list[ClassAdaptation] = []
    for name, basis in classes:
        prior = state.entry(name)
        if prior is None and spec.node_label is None and len(state.classes) == 1:
            prior = state.classes[0].model_copy(update={"name": name})
        if prior is None:
            prior = ClassAdaptation(name=name, basis=basis, seeded=reset)
        entry, class_notes = _rebase_class(prior, spec, basis)
        entries.append(entry)
        notes += class_notes
    return state.model_copy(update={"classes": entries, "mode": spec.mode}), notes


# --- fetch (the I/O) -----------------------------------------------------------------------


class QueryApi(Protocol):
    def query(self, promql: str, at: float | None = None) -> list[Sample]: ...
    def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]: ...
    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]: ...


@dataclass(frozen=True)
class Reading:
    time: float
    dist: Distribution | None  # None: no data this interval


@dataclass
class ClassObservation:
    live: dict[str, Reading] = field(default_factory=dict)  # signal -> this interval
    history: dict[str, list[Reading]] = field(default_factory=dict)  # signal -> seeded
    queries: dict[str, str] = field(default_factory=dict)
    seed_attempted: bool = False


@dataclass
class Observation:
    classes: dict[str, ClassObservation] = field(default_factory=dict)
    error: PrometheusError | None = None
    failed: str | None = None  # "class: signal query"
    missing: str | None = None  # MetricNotFound or NodeLabelMissing
    missing_message: str = ""


@dataclass(frozen=True)
class Target:
    """A class to observe: its name, its nodes, whether its history is still to load."""

    name: str
    nodes: tuple[str, ...]
    seeded: bool


def node_matcher(spec: AdaptationSpec, nodes: Sequence[str]) -> list[LabelMatcher]:
    if spec.node_label is None:
        return []
    pattern = "|".join(n.replace(".", "\\.") for n in sorted(nodes)) or "^$"
    # Built, not validated: node names are DNS names, and a large class's pattern is
    # longer than a user's matcher may be (it is sent as a POST form).
    matcher = LabelMatcher.model_construct(
        label=spec.node_label, operator=MatchOperator.REGEX_MATCH, value=pattern
    )
    return [matcher]


def _le(labels: dict[str, str]) -> float:
    try:
        return float(labels.get("le", "nan"))
    except ValueError:
        return math.nan


def _plausible(sig: Signal, level: float) -> None:
    """Raise ImplausibleSample for a level (threshold units, from a finite sample) that no
    deployment shows: negative, or beyond ``physical_max`` (an overflow to inf included)."""
    if not 0.0 <= level <= sig.physical_max:
        raise ImplausibleSample(
            f"the {sig.alias} query gave {level:.4g} {sig.unit}, outside "
            f"0..{sig.physical_max:g} {sig.unit}: not an observation (check the query's units "
            "and matchers); not learned"
        )


def _distribution(samples: list[Sample], kind: presets.Kind, sig: Signal) -> Distribution | None:
    if kind is presets.Kind.DISTRIBUTION:
        for s in samples:  # bucket rates of counters: never negative
            if math.isfinite(s.value) and s.value < 0:
                raise ImplausibleSample(
                    f"the {sig.alias} query gave a negative bucket rate {s.value:.4g}: not an "
                    "observation (check the query); not learned"
                )
        if len(samples) > histogram.MAX_RUNTIME_BUCKETS:
            raise PrometheusResponseError(
                f"{len(samples)} buckets: more than any runtime exports; narrow the matchers"
            )
        return Distribution.from_buckets((_le(s.labels), s.value) for s in samples)
    sample = one_sample(samples)
    if sample is not None and math.isfinite(sample.value):  # NaN, +Inf: no data
        level = sample.value if sig.name == "decode" else sample.value * 1000.0
        _plausible(sig, level)
    seconds = None if sample is None else sig.seconds(sample.value)
    return None if seconds is None else Distribution.point(seconds)


def _history(
    api: QueryApi,
    promql: str,
    kind: presets.Kind,
    sig: Signal,
    start: float,
    end: float,
    step: float,
) -> list[Reading]:
    series = api.query_range(promql, start, end, step)
    by_time: dict[float, list[Sample]] = {}
    for s in series:
        for t, v in s.points[: MAX_SEED_POINTS + 1]:
            by_time.setdefault(t, []).append(Sample(s.labels, t, v))
    readings = []
    for t in sorted(by_time)[: MAX_SEED_POINTS + 1]:
        dist = _distribution(by_time[t], kind, sig)
        if dist is not None:
            readings.append(Reading(t, dist))
    return readings


def seed_range(spec: AdaptationSpec, now: float) -> tuple[float, float, float] | None:
    """(start, end, step) of the history to load; None when there is none to load."""
    history = spec.history_seconds
    interval = spec.interval_seconds
    if history < interval:
        return None
    step = max(interval, history / MAX_SEED_POINTS)
    return now - history, now - interval, step


def fetch(
    spec: AdaptationSpec, targets: Sequence[Target], api: QueryApi, now: float
) -> Observation:
    """Every class's history (when due) and interval; the first error ends the interval."""
    obs = Observation()
    queries = {sig.name: presets.signal_query(spec, sig.name) for sig in SIGNALS}
    span = seed_range(spec, now)
    for target in targets[:MAX_CLASSES]:
        cobs = obs.classes.setdefault(target.name, ClassObservation())
        extra = node_matcher(spec, target.nodes)
        for sig in SIGNALS:
            sq = queries[sig.name]
            if sq is None:
                continue
            promql = presets.render(sq.template, spec, extra=extra)
            cobs.queries[sig.name] = promql
            try:
                if not target.seeded and span is not None:
                    cobs.history[sig.name] = _history(api, promql, sq.kind, sig, *span)
                cobs.live[sig.name] = Reading(now, _distribution(api.query(promql), sq.kind, sig))
            except PrometheusError as exc:
                obs.error, obs.failed = exc, f"{target.name}: {sig.name} query"
                return obs
        cobs.seed_attempted = not target.seeded and span is not None
    if obs.classes and not any(
        r.dist is not None for c in obs.classes.values() for r in c.live.values()
    ):
        _explain_missing(spec, api, now, [q for q in queries.values() if q], obs)
    return obs


def _explain_missing(
    spec: AdaptationSpec,
    api: QueryApi,
    now: float,
    queries: list[presets.SignalQuery],
    obs: Observation,
) -> None:
    """No data anywhere: do the metrics exist at all for these matchers (series endpoint)?"""
    names = [name for q in queries for name in q.metrics]
    if not names or any(not q.metrics for q in queries):
        return  # a custom query: its metric names are unknown
    lookback = max(MISSING_LOOKBACK, spec.history_seconds, spec.window_seconds)
    selectors = [presets.series_selector(name, spec) for name in names]
    try:
        found = api.series(selectors, now - lookback, now)
    except PrometheusError as exc:
        obs.error, obs.failed = exc, "series lookup"
        return
    where = f" with {presets.matchers(spec)}" if spec.label_matchers else ""
    if not found:
        obs.missing = "MetricNotFound"
        obs.missing_message = (
            f"no series named {' or '.join(names)} (either escaping){where} in the last "
            f"{lookback / 3600:g} h: check adaptation.source (the runtime and its version) "
            "and labelMatchers"
        )
    elif spec.node_label and not any(spec.node_label in labels for labels in found):
        obs.missing = "NodeLabelMissing"
        obs.missing_message = (
            f"{len(found)} series of {' or '.join(names)}{where} exist, but none carries the "
            f"label {spec.node_label!r} (adaptation.nodeLabel): relabel "
            "__meta_kubernetes_pod_node_name into it, or unset nodeLabel"
        )


# --- advance (pure) ------------------------------------------------------------------------


@dataclass(frozen=True)
class Move:
    cls: str
    signal: Signal
    old: float
    new: float
    observed: float
    confidence: float
    target: float
    samples: int
    seeded: bool = False  # the net move of replaying Prometheus' history

    def message(self) -> str:
        u = self.signal.unit
        how = "from history of" if self.seeded else "decayed history of"
        return (
            f"{self.cls}: {self.signal.alias} {self.old:.4g} -> {self.new:.4g} {u}: observed "
            f"{self.observed:.4g} {u} ({how} {self.samples} samples), confidence "
            f"{self.confidence:.2f}, target {self.target:.4g}"
        )


QUERY_SHOWN = 2048  # characters of a query kept in status (a node matcher can be long)


def shown_query(promql: str) -> str:
    """The query as status shows it: whole, or its start and how long it was."""
    if len(promql) <= QUERY_SHOWN:
        return promql
    return f"{promql[: QUERY_SHOWN - 40]}... ({len(promql)} characters)"


def _level(sig: Signal, spec: AdaptationSpec, wire: dict[str, float]) -> float | None:
    q = histogram.quantile(histogram.from_wire(wire), getattr(spec, sig.quantile_field))
    return None if q is None else sig.level(q)


@dataclass
class _Step:
    state: SignalState
    move: Move | None
    note: str
    learning: bool = False


def _step(
    sig: Signal,
    spec: AdaptationSpec,
    entry: ClassAdaptation,
    s: SignalState,
    reading: Reading,
    overridden: frozenset[str],
    weight: float = 1.0,
) -> _Step:
    """Fold one reading of one signal in and apply the rule."""
    interval, half_life = spec.interval_seconds, spec.half_life_seconds
    if reading.dist is None:
        confidence = aggregate.decayed_confidence(
            s, reading.time, interval=interval, half_life=half_life
        )
        s = s.model_copy(update={"confidence": confidence})
    else:
        s = aggregate.add_sample(
            s, reading.dist, reading.time, interval=interval, half_life=half_life, weight=weight
        )
        q = getattr(spec, sig.quantile_field)
        last = reading.dist.quantile(q)
        s = s.model_copy(
            update={
                "observed": _level(sig, spec, s.histogram),
                "last_value": None if last is None else sig.level(last),
            }
        )
    inputs = _inputs(sig, spec, entry.basis, s)
    if inputs is None:
        return _Step(s, None, "not adapted: the engine gives no expectation or threshold for it")
    if sig.threshold_field in overridden:
        s = s.model_copy(update={"threshold": None})
        return _Step(s, None, "not adapted: an explicit override sets it")
    out = rule.step(inputs)
    note = out.note if reading.dist is not None else f"no data this interval; {out.note}"
    upd: dict[str, object] = {"target": out.target, "threshold": out.threshold}
    move = None
    if out.moved and reading.dist is not None:
        assert s.observed is not None and out.target is not None
        old = s.threshold if s.threshold is not None else rule.start(inputs)
        move = Move(entry.name, sig, old, out.threshold, s.observed, s.confidence, out.target,
                    s.samples)  # fmt: skip
        upd["last_move_time"] = aggregate.rfc3339(reading.time)
    elif reading.dist is None:
        upd["threshold"] = s.threshold if s.threshold is not None else out.threshold
    return _Step(s.model_copy(update=upd), move, note, s.samples < spec.min_samples)


def _replay(
    sig: Signal,
    spec: AdaptationSpec,
    entry: ClassAdaptation,
    readings: list[Reading],
    overridden: frozenset[str],
) -> tuple[SignalState, Move | None]:
    """Seeded history through the rule, point by point; one net move."""
    s: SignalState = getattr(entry, sig.name)
    start = s.threshold
    step = max(spec.interval_seconds, spec.history_seconds / MAX_SEED_POINTS)
    weight = step / spec.interval_seconds  # a point stands for `weight` intervals
    last: _Step | None = None
    for reading in readings:
        last = _step(sig, spec, entry, s, reading, overridden, weight)
        s = last.state
    if last is None or start is None or s.threshold is None or s.threshold == start:
        return s, None
    assert s.observed is not None and s.target is not None
    return s, Move(entry.name, sig, start, s.threshold, s.observed, s.confidence, s.target,
                   s.samples, seeded=True)  # fmt: skip


@dataclass
class Interval:
    """What one interval did: the new state, moves (one Event each), seeding summaries."""

    state: AdaptationStatus
    moves: list[Move] = field(default_factory=list)
    seeded: list[str] = field(default_factory=list)


def advance(
    state: AdaptationStatus,
    spec: AdaptationSpec,
    obs: Observation,
    now: float,
    overridden: frozenset[str] = frozenset(),
) -> Interval:
    """Fold one interval's observation in; thresholds are held on any error."""
    stamp = aggregate.rfc3339(now)
    if obs.error is not None:
        where = f" ({obs.failed})" if obs.failed else ""
        held = "; ".join(
            f"{c.name}: " + ", ".join(f"{k}={v:.4g}" for k, v in c.thresholds.wire().items())
            for c in state.classes
            if c.thresholds.wire()
        )
        return Interval(
            state.model_copy(
                update={
                    "healthy": False,
                    "reason": obs.error.reason,
                    "message": f"{obs.error}{where}; thresholds held"
                    + (f": {held}" if held else ""),
                    "last_query_time": stamp,
                }
            )
        )
    result = Interval(state)
    entries: list[ClassAdaptation] = []
    notes: list[str] = []
    learning = data = False
    for entry in state.classes:
        cobs = obs.classes.get(entry.name)
        if cobs is None:
            entries.append(entry)
            continue
        updates: dict[str, object] = {}
        if cobs.seed_attempted and not entry.seeded:  # not if a reset came meanwhile
            updates["seeded"] = True
            seeded = 0
            for sig in SIGNALS:
                readings = cobs.history.get(sig.name) or []
                if not readings:
                    continue
                s, move = _replay(sig, spec, entry, readings, overridden)
                entry = entry.model_copy(update={sig.name: s})
                seeded = max(seeded, len(readings))
                if move is not None:
                    result.moves.append(move)
            if seeded:
                result.seeded.append(
                    f"{entry.name}: {seeded} samples from {spec.history} of Prometheus history"
                )
        for sig in SIGNALS:
            s = getattr(entry, sig.name)
            if sig.name not in cobs.queries:
                updates[sig.name] = s.model_copy(
                    update={"query": "", "note": "no query for source"}
                )
                continue
            reading = cobs.live.get(sig.name) or Reading(now, None)
            step = _step(sig, spec, entry, s, reading, overridden)
            data = data or reading.dist is not None
            learning = learning or step.learning
            updates[sig.name] = step.state.model_copy(
                update={"query": shown_query(cobs.queries[sig.name]), "note": step.note}
            )
            if step.move is not None:
                result.moves.append(step.move)
            notes.append(f"{entry.name}: {sig.alias}: {step.note}")
        entry = entry.model_copy(update=updates)
        entries.append(entry.model_copy(update={"thresholds": _thresholds(entry)}))
    healthy = obs.missing is None
    if obs.missing is not None:
        reason, message = obs.missing, obs.missing_message
    else:
        if result.moves:
            reason = "Tightened" if spec.mode is AdaptationMode.APPLY else "Recommended"
        elif not data:
            reason = "NoData"
        elif learning:
            reason = "Learning"
        else:
            reason = "Holding"
        message = "; ".join(notes) or "no signal to adapt for this source"
        if spec.mode is AdaptationMode.RECOMMEND:
            message = "mode Recommend (the ConfigMap keeps computed thresholds): " + message
    result.state = state.model_copy(
        update={
            "classes": entries,
            "healthy": healthy,
            "reason": reason,
            "message": message[:4096],
            "last_query_time": stamp,
        }
    )
    return result


def apply(
    computed: Thresholds,
    entry: ClassAdaptation | None,
    overridden: frozenset[str] = frozenset(),
) -> Thresholds:
    """Computed thresholds with each learned (and not overridden) field substituted."""
    if entry is None:
        return computed
    update: dict[str, float] = {}
    for sig in SIGNALS:
        value = getattr(entry, sig.name).threshold
        if value is None or sig.threshold_field in overridden or math.isnan(value):
            continue
        if getattr(computed, sig.threshold_field) is None:
            continue
        update[sig.threshold_field] = value
    return computed.model_copy(update=update) if update else computed
