"""Exponentially decaying history of one signal, with an explicit confidence.

Like the Vertical Pod Autoscaler's recommender, older samples count less: a sample
``halfLife`` old weighs half of a fresh one, and the level is read at a quantile of the
decayed distribution (``histogram.py``). Each new sample weighs 1, so the decayed
total weight ``W`` approaches ``W_inf = 1 / (1 - 2^(-interval/halfLife))`` when samples
arrive every interval forever. Confidence is ``min(1, W / W_inf)``: after a history of
``t`` at a steady rate it equals ``1 - 2^(-t/halfLife)`` (0.5 after one half-life, 0.75
after two); gaps (no traffic) let it fall again. It is shown in status next to the mean.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..api.adaptation import SignalState
from . import histogram
from .histogram import Distribution


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def decay(elapsed: float, half_life: float) -> float:
    return float(2.0 ** (-max(0.0, elapsed) / half_life))


def steady_weight(interval: float, half_life: float) -> float:
    """The total weight one sample per interval converges to."""
    return 1.0 / (1.0 - decay(interval, half_life))


def confidence(weight: float, interval: float, half_life: float) -> float:
    return min(1.0, weight / steady_weight(interval, half_life))


def add_sample(
    state: SignalState,
    dist: Distribution,
    now: float,
    *,
    interval: float,
    half_life: float,
    weight: float = 1.0,
) -> SignalState:
    """Decay the history to ``now`` and add one interval's distribution with ``weight``.

    A sample older than the last one (never expected: seeding goes in time order) is
    decayed by its age instead of aging the history.
    """
    last = parse_time(state.last_sample_time)
    hist = histogram.from_wire(state.histogram)
    if last is not None and now >= last:
        hist = histogram.scale(hist, decay(now - last, half_life))
    elif last is not None:
        weight *= decay(last - now, half_life)
    hist = histogram.add(hist, dist, weight)
    total = sum(hist.values())
    stamp = rfc3339(max(now, last or now))
    return state.model_copy(
        update={
            "samples": state.samples + 1,
            "weight": total,
            "histogram": histogram.to_wire(hist),
            "first_sample_time": state.first_sample_time or rfc3339(now),
            "last_sample_time": stamp,
            "confidence": confidence(total, interval, half_life),
        }
    )


def decayed_confidence(
    state: SignalState, now: float, *, interval: float, half_life: float
) -> float:
    """Confidence as of ``now`` without a new sample (history ages while traffic is absent)."""
    last = parse_time(state.last_sample_time)
    if last is None:
        return 0.0
    return confidence(state.weight * decay(now - last, half_life), interval, half_life)
