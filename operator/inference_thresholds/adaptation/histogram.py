"""A decaying histogram of one signal (seconds), read at a quantile, as VPA's recommender.

Each interval contributes the distribution the runtime's Prometheus histogram shows for
that interval (bucket rates by ``le``), normalised to weight 1, or a single value where
the runtime exports only counters (llama.cpp) or a custom query gives one number. The
history lives on a fixed logarithmic grid: bucket ``i`` covers
``[GRID_START x GRID_RATIO^i, GRID_START x GRID_RATIO^(i+1))`` seconds (5 % wide, 0.1 ms
to ~3 h; values outside fall into the end buckets). A runtime bucket's mass spreads over
the grid buckets it covers in proportion to their overlap, and a quantile interpolates
linearly inside its grid bucket: the assumptions of PromQL's ``histogram_quantile`` (the
runtime's first bucket starts at 0; the ``+Inf`` bucket counts at the highest finite
bound), applied to the decayed history instead of one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GRID_START = 1e-4
GRID_RATIO = 1.05
GRID_BUCKETS = 340  # 1e-4 x 1.05^340 ~ 1.6e3 s
MAX_RUNTIME_BUCKETS = 256  # more `le` series than any runtime exports: a wrong query
PRUNE_BELOW = 1e-6  # relative weight under which a grid bucket is dropped

Histogram = dict[int, float]
Segment = tuple[float, float, float]  # (low, high, mass); low == high is a point


def lower(i: int) -> float:
    return 0.0 if i <= 0 else GRID_START * GRID_RATIO**i


def upper(i: int) -> float:
    return math.inf if i >= GRID_BUCKETS - 1 else GRID_START * GRID_RATIO ** (i + 1)


def index(value: float) -> int:
    if value <= GRID_START:
        return 0
    if not math.isfinite(value):  # beyond any float ratio: the last bucket, like 1e4 s
        return GRID_BUCKETS - 1
    # log(value) - log(start), not log(value / start): that ratio overflows past ~1e304.
    i = math.floor((math.log(value) - math.log(GRID_START)) / math.log(GRID_RATIO))
    return min(max(i, 0), GRID_BUCKETS - 1)


@dataclass(frozen=True)
class Distribution:
    """One interval's observations of a signal, in seconds (masses in any unit)."""

    segments: tuple[Segment, ...]

    @property
    def total(self) -> float:
        return sum(m for _, _, m in self.segments)

    @classmethod
    def point(cls, value: float) -> Distribution:
        return cls(((value, value, 1.0),))

    @classmethod
    def from_buckets(cls, buckets: Iterable[tuple[float, float]]) -> Distribution | None:
        """Cumulative ``(le, count or rate)`` pairs of a Prometheus histogram; None when
        nothing was observed (or only a ``+Inf`` bucket exists: no shape to read)."""
        pairs = sorted(
            (le, count) for le, count in buckets if not math.isnan(le) and math.isfinite(count)
        )
        finite = [le for le, _ in pairs if math.isfinite(le)]
        if not finite:
            return None
        segments: list[Segment] = []
        previous_le, previous_count = 0.0, 0.0
        for le, count in pairs:
            count = max(count, previous_count)  # as histogram_quantile: force monotonic
            mass = count - previous_count
            if mass > 0:
                if math.isinf(le):  # the +Inf bucket counts at the highest finite bound
                    segments.append((finite[-1], finite[-1], mass))
                else:
                    segments.append((min(previous_le, le), le, mass))
            previous_le, previous_count = max(le, 0.0), count
        dist = cls(tuple(segments))
        return dist if dist.total > 0 else None

    def quantile(self, q: float) -> float | None:
        return quantile(add({}, self, 1.0), q)


def add(hist: Mapping[int, float], dist: Distribution, weight: float) -> Histogram:
    """``hist`` plus ``dist`` scaled to total ``weight``."""
    out = dict(hist)
    total = dist.total
    if total <= 0:
        return out
    for low, high, mass in dist.segments:
        share = weight * mass / total
        low, high = max(low, 0.0), max(high, 0.0)
        if high <= low:
            i = index(low)
            out[i] = out.get(i, 0.0) + share
            continue
        for i in range(index(low), index(high) + 1):
            overlap = min(high, upper(i)) - max(low, lower(i))
            if overlap > 0:
                out[i] = out.get(i, 0.0) + share * overlap / (high - low)
    return out


def scale(hist: Mapping[int, float], factor: float) -> Histogram:
    """Every weight times ``factor`` (decay); buckets that became negligible are dropped."""
    total = sum(hist.values()) * factor
    return {i: w * factor for i, w in hist.items() if w * factor > PRUNE_BELOW * total}


def quantile(hist: Mapping[int, float], q: float) -> float | None:
    """The value below which ``q`` of the weight lies (linear inside a grid bucket)."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank, seen = q * total, 0.0
    for i in sorted(hist):
        w = hist[i]
        if w > 0 and seen + w >= rank:
            high = upper(i) if math.isfinite(upper(i)) else lower(i) * GRID_RATIO
            return lower(i) + (high - lower(i)) * (rank - seen) / w
        seen += w
    last = max(hist)
    return lower(last)


def to_wire(hist: Mapping[int, float]) -> dict[str, float]:
    return {str(i): float(f"{w:.9g}") for i, w in sorted(hist.items())}


def from_wire(wire: Mapping[str, float]) -> Histogram:
    """Status form back to a histogram; entries that are not a grid bucket are dropped."""
    out: Histogram = {}
    for key, weight in wire.items():
        if key.isdigit() and int(key) < GRID_BUCKETS and math.isfinite(weight) and weight > 0:
            out[int(key)] = weight
    return out
