"""One adaptation interval as pure functions over ``AdaptationStatus`` (kept in CR status).

- ``basis_from`` — the engine's numbers (expectation, computed threshold) for the
  effective class; ``rebase`` reconciles learned state with them and with resetToken.
- ``fetch`` — the only I/O: evaluate the queries (errors captured, not raised); a value
  that no deployment can show (negative, beyond ``physical_max``) is an error, not a sample.
- ``advance`` — fold the observation into the decayed aggregates and move thresholds by
  the rule in ``rule.py``; returns the new state and the moves (one Event each).
- ``apply`` — the thresholds pods get: computed ones with adapted fields substituted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..api import Expected, Thresholds
from ..api.adaptation import (
    AdaptationBasis,
    AdaptationSpec,
    AdaptationStatus,
    SignalState,
)
from . import aggregate, presets, rule
from .prometheus import PrometheusError

# Learned values are folded from bounded samples; anything beyond this in a stored state
# (a hand-edited status) is junk, not history.
STATE_VALUE_MAX = 1e12


class ImplausibleSample(PrometheusError):
    """A query answered a number no deployment can show: not folded in, thresholds held."""

    reason = "ImplausibleSample"


@dataclass(frozen=True)
class Signal:
    name: str  # attribute on AdaptationStatus
    threshold_field: str  # attribute on Thresholds
    alias: str  # wire name of the threshold
    direction: rule.Direction
    expected_field: str  # on AdaptationBasis
    computed_field: str  # on AdaptationBasis
    query_field: str  # on presets.Queries
    scale: float  # query unit -> threshold unit
    unit: str
    physical_max: float  # in the threshold unit: larger samples are not observations


SIGNALS = (
    Signal(
        "decode",
        "min_tokens_per_second",
        "minTokensPerSecond",
        rule.Direction.MIN,
        "expected_decode_tokens_per_second",
        "computed_min_tokens_per_second",
        "decode_tokens_per_second",
        1.0,
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
        "time_to_first_token_seconds",
        1000.0,
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
        observed=s.mean,
        confidence=s.confidence,
        samples=s.samples,
        min_samples=spec.min_samples,
        max_step=spec.max_step_percent / 100.0,
        floor=getattr(spec.floors, sig.threshold_field),
        ceiling=getattr(spec.ceilings, sig.threshold_field),
    )


def _thresholds(state: AdaptationStatus) -> Thresholds:
    return Thresholds(
        **{sig.threshold_field: getattr(state, sig.name).threshold for sig in SIGNALS}
    )


def rebase(
    state: AdaptationStatus | None, spec: AdaptationSpec, basis: AdaptationBasis
) -> tuple[AdaptationStatus, list[str]]:
    """Bring learned state in line with the current basis and spec; notes say what changed."""
    notes: list[str] = []
    if state is None:
        state = AdaptationStatus(reset_token=spec.reset_token, basis=basis)
    elif state.reset_token != spec.reset_token:
        notes.append("resetToken changed: learned state discarded, thresholds back to computed")
        state = AdaptationStatus(reset_token=spec.reset_token, basis=basis)
    updates: dict[str, object] = {"basis": basis}
    for sig in SIGNALS:
        s: SignalState = getattr(state, sig.name)
        if not _sound(s):
            notes.append(
                f"{sig.alias}: learned state held a non-finite or absurd number; discarded"
            )
            s = SignalState()
        old_e, new_e = getattr(state.basis, sig.expected_field), getattr(basis, sig.expected_field)
        old_c, new_c = getattr(state.basis, sig.computed_field), getattr(basis, sig.computed_field)
        if _differs(old_e, new_e) and (s.samples or s.threshold is not None):
            notes.append(
                f"{sig.alias}: physical expectation changed {old_e} -> {new_e}; observations "
                "and adapted value discarded"
            )
            s = SignalState()
        elif _differs(old_c, new_c) and s.threshold is not None:
            notes.append(
                f"{sig.alias}: computed threshold changed {old_c} -> {new_c}; adapted value "
                "restarts from it (observations kept)"
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
    state = state.model_copy(update=updates)
    return state.model_copy(update={"thresholds": _thresholds(state)}), notes


@dataclass
class Observation:
    values: dict[str, float | None] = field(default_factory=dict)  # signal -> threshold unit
    queries: dict[str, str] = field(default_factory=dict)
    error: PrometheusError | None = None
    failed_signal: str | None = None


QueryFn = Callable[[str], float | None]


def fetch(spec: AdaptationSpec, query: QueryFn) -> Observation:
    """Evaluate every signal's query; the first error is recorded and ends the interval."""
    templates = presets.queries(spec)
    obs = Observation()
    for sig in SIGNALS:
        template = getattr(templates, sig.query_field)
        if template is None:
            continue
        promql = presets.render(template, spec)
        obs.queries[sig.name] = promql
        try:
            value = query(promql)
            obs.values[sig.name] = None if value is None else _plausible(sig, value * sig.scale)
        except PrometheusError as exc:
            obs.error, obs.failed_signal = exc, sig.name
            return obs
    return obs


def _plausible(sig: Signal, value: float) -> float:
    """``value`` when a deployment can show it (finite, 0..physical_max), else raise."""
    if math.isfinite(value) and 0.0 <= value <= sig.physical_max:
        return value
    raise ImplausibleSample(
        f"the {sig.alias} query gave {value:.4g} {sig.unit}, outside 0..{sig.physical_max:g} "
        f"{sig.unit}: not an observation (check the query's units and matchers); not learned"
    )


def _sound(s: SignalState) -> bool:
    """Every number of the learned state is finite and within STATE_VALUE_MAX."""
    values = (s.weight, s.mean, s.variance, s.last_value, s.target, s.threshold)
    return all(v is None or (math.isfinite(v) and abs(v) <= STATE_VALUE_MAX) for v in values)


@dataclass(frozen=True)
class Move:
    signal: Signal
    old: float
    new: float
    observed: float
    confidence: float
    target: float
    samples: int

    def message(self) -> str:
        return (
            f"{self.signal.alias} {self.old:.4g} -> {self.new:.4g} {self.signal.unit}: observed "
            f"{self.observed:.4g} {self.signal.unit} (decayed mean of {self.samples} samples), "
            f"confidence {self.confidence:.2f}, target {self.target:.4g}"
        )


def advance(
    state: AdaptationStatus,
    spec: AdaptationSpec,
    obs: Observation,
    now: float,
    overridden: frozenset[str] = frozenset(),
) -> tuple[AdaptationStatus, list[Move]]:
    """Fold one interval's observation in; thresholds are held on any error."""
    stamp = aggregate.rfc3339(now)
    held = ", ".join(
        f"{sig.alias}={getattr(state, sig.name).threshold:.4g}"
        for sig in SIGNALS
        if getattr(state, sig.name).threshold is not None
    )
    if obs.error is not None:
        where = f" ({obs.failed_signal} query)" if obs.failed_signal else ""
        return state.model_copy(
            update={
                "healthy": False,
                "reason": obs.error.reason,
                "message": f"{obs.error}{where}; thresholds held" + (f" at {held}" if held else ""),
                "last_query_time": stamp,
            }
        ), []

    interval, half_life = spec.interval_seconds, spec.half_life_seconds
    updates: dict[str, object] = {}
    moves: list[Move] = []
    notes: list[str] = []
    learning = no_data = False
    for sig in SIGNALS:
        s: SignalState = getattr(state, sig.name)
        if sig.name not in obs.queries:
            updates[sig.name] = s.model_copy(update={"query": "", "note": "no query for source"})
            continue
        value = obs.values.get(sig.name)
        if value is None:
            no_data = True
            s = s.model_copy(
                update={
                    "confidence": aggregate.decayed_confidence(
                        s, now, interval=interval, half_life=half_life
                    )
                }
            )
        else:
            s = aggregate.add_sample(s, value, now, interval=interval, half_life=half_life)
        s = s.model_copy(update={"query": obs.queries[sig.name]})
        inputs = _inputs(sig, spec, state.basis, s)
        if inputs is None:
            note = "not adapted: the engine gives no expectation or threshold for it"
        elif sig.threshold_field in overridden:
            note = "not adapted: an explicit override sets it"
            s = s.model_copy(update={"threshold": None})
        else:
            out = rule.step(inputs)
            note = out.note if value is not None else f"no data this interval; {out.note}"
            learning = learning or s.samples < spec.min_samples
            upd: dict[str, object] = {"target": out.target, "threshold": out.threshold}
            if out.moved and value is not None:
                assert s.mean is not None and out.target is not None
                old = s.threshold if s.threshold is not None else rule.start(inputs)
                moves.append(
                    Move(sig, old, out.threshold, s.mean, s.confidence, out.target, s.samples)
                )
                upd["last_move_time"] = stamp
            elif value is None:
                upd["threshold"] = s.threshold if s.threshold is not None else out.threshold
            s = s.model_copy(update=upd)
        s = s.model_copy(update={"note": note})
        notes.append(f"{sig.alias}: {note}")
        updates[sig.name] = s
    if moves:
        reason = "Tightened"
    elif no_data:
        reason = "NoData"
    elif learning:
        reason = "Learning"
    else:
        reason = "Holding"
    new = state.model_copy(
        update={
            **updates,
            "healthy": True,
            "reason": reason,
            "message": "; ".join(notes) or "no signal to adapt for this source",
            "last_query_time": stamp,
        }
    )
    return new.model_copy(update={"thresholds": _thresholds(new)}), moves


def apply(
    computed: Thresholds, state: AdaptationStatus | None, overridden: frozenset[str] = frozenset()
) -> Thresholds:
    """Computed thresholds with each adapted (and not overridden) field substituted."""
    if state is None:
        return computed
    update: dict[str, float] = {}
    for sig in SIGNALS:
        value = getattr(state, sig.name).threshold
        if value is None or sig.threshold_field in overridden or math.isnan(value):
            continue
        if getattr(computed, sig.threshold_field) is None:
            continue
        update[sig.threshold_field] = value
    return computed.model_copy(update=update) if update else computed
