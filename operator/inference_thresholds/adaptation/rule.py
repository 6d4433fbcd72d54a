"""The adaptation rule: where a threshold may move in one interval.

For a minimum (decode tokens/s; higher is tighter), with the engine's physical
expectation ``E``, its computed threshold ``T0`` (so slack ``f = T0 / E``), the observed
decayed mean ``O`` and confidence ``c``:

1. ``target = T0 + c * (f * O - T0)`` — the blend of the physical expectation and the
   observed level, scaled by the same slack the engine applied to physics.
2. Below ``minSamples`` nothing moves.
3. Tighten only: if ``target`` is above the current threshold ``T``, the new threshold is
   ``min(target, T * (1 + maxStep))``; otherwise ``T`` is HELD. A sustained drop in
   observed performance lowers ``O`` and thus ``target``, and therefore never lowers the
   threshold: that drop is the regression the thresholds exist to catch.
4. Bounds: never above the physical ceiling ``E`` nor ``ceilings``; never below the
   configured ``floors`` nor below ``T0`` (physics wins if a floor exceeds ``E``).
5. Moves smaller than a dead band (1%, or half of maxStep when that is smaller) are not
   made, so Events mark real moves (a final snap onto a bound is always made).

A maximum (time to first token; lower is tighter) mirrors it: tighten by decreasing, at
most ``T * (1 - maxStep)`` per interval, never below the physical expectation ``E`` nor
``floors``, never above ``T0`` nor ``ceilings``.

Thresholds loosen only when the basis changes (new physical expectation or computed
threshold: spec or hardware changed) or ``resetToken`` changes — explicit acts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

DEAD_BAND = 0.01


class Direction(StrEnum):
    MIN = "min"  # a minimum: higher is tighter
    MAX = "max"  # a maximum: lower is tighter


@dataclass(frozen=True)
class Inputs:
    direction: Direction
    expected: float  # physical expectation E
    computed: float  # engine threshold T0
    current: float | None  # adapted threshold now (None: never adapted)
    observed: float | None  # decayed mean O
    confidence: float
    samples: int
    min_samples: int
    max_step: float  # fraction, e.g. 0.05
    floor: float | None = None
    ceiling: float | None = None


@dataclass(frozen=True)
class Outcome:
    threshold: float
    target: float | None
    moved: bool
    note: str


def bounds(i: Inputs) -> tuple[float, float]:
    """(lowest, highest) value the threshold may take."""
    if i.direction is Direction.MIN:
        hi = min(i.expected, i.ceiling if i.ceiling is not None else math.inf)
        lo = max(i.computed, i.floor if i.floor is not None else -math.inf)
    else:
        lo = max(i.expected, i.floor if i.floor is not None else -math.inf)
        hi = min(i.computed, i.ceiling if i.ceiling is not None else math.inf)
    if lo > hi:  # a configured bound beyond physics: physics wins
        if i.direction is Direction.MIN:
            lo = hi
        else:
            hi = lo
    return lo, hi


def start(i: Inputs) -> float:
    """The loosest allowed value: where a fresh or reset threshold begins."""
    lo, hi = bounds(i)
    return lo if i.direction is Direction.MIN else hi


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def step(i: Inputs) -> Outcome:
    lo, hi = bounds(i)
    current = _clamp(i.current if i.current is not None else start(i), lo, hi)
    if i.observed is None:
        return Outcome(current, None, False, "held: no observation yet")
    slack = i.computed / i.expected
    observed_threshold = i.observed * slack
    target = i.computed + i.confidence * (observed_threshold - i.computed)
    if i.samples < i.min_samples:
        return Outcome(current, target, False, f"learning: {i.samples}/{i.min_samples} samples")
    tighter = target > current if i.direction is Direction.MIN else target < current
    if not tighter:
        return Outcome(
            current,
            target,
            False,
            f"held at {current:.4g}: target {target:.4g} is not tighter (thresholds only "
            "tighten; worse observed performance never loosens them)",
        )
    if i.direction is Direction.MIN:
        new = _clamp(min(target, current * (1.0 + i.max_step)), lo, hi)
    else:
        new = _clamp(max(target, current * (1.0 - i.max_step)), lo, hi)
    band = min(DEAD_BAND, i.max_step / 2.0)
    if abs(new - current) < band * current and new not in (lo, hi):
        return Outcome(current, target, False, f"held at {current:.4g}: move within dead band")
    limit = ""
    if new in (lo, hi) and new != target:
        limit = " (at bound)"
    elif new != target:
        limit = f" (step-limited to {i.max_step:.0%})"
    return Outcome(new, target, True, f"tightened {current:.4g} -> {new:.4g}{limit}")
