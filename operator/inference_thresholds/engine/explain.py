"""The decision log: every number with its source and arithmetic."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import TypeAdapter

from ..api import Decision, DecisionSource

# Validating the whole list once in pydantic-core is ~3x cheaper than building each
# Decision in Python; the engine's throughput target depends on it.
_DECISIONS = TypeAdapter(list[Decision])


class DecisionLog:
    def __init__(self) -> None:
        self._entries: list[dict[str, Any]] = []

    @property
    def decisions(self) -> list[Decision]:
        return _DECISIONS.validate_python(self._entries)

    def add(
        self,
        step: str,
        value: float | str | None,
        unit: str | None,
        source: DecisionSource,
        detail: str = "",
    ) -> None:
        if isinstance(value, float):
            value = round(value, 4) if abs(value) < 100 else round(value, 1)
        self._entries.append(
            {"step": step, "value": value, "unit": unit, "source": source, "detail": detail}
        )

    def extend(self, decisions: list[Decision]) -> None:
        self._entries.extend(d.model_dump() for d in decisions)


def round_sig(
    value: float, digits: int = 3, direction: Literal["nearest", "down", "up"] = "nearest"
) -> float:
    """Round to significant digits; minimums round down and maximums up, so rounding
    never makes a threshold stricter than computed."""
    if value == 0 or not math.isfinite(value):
        return value
    scale = math.pow(10, digits - 1 - math.floor(math.log10(abs(value))))
    scaled = value * scale
    if direction == "down":
        whole = math.floor(scaled)
    elif direction == "up":
        whole = math.ceil(scaled)
    else:
        whole = round(scaled)
    return whole / scale


def log_decode_rate(log: DecisionLog, step_s: float, expression: str, bound: str) -> None:
    """The decode rate line both device models end with: the step time and what bounds it."""
    log.add(
        "decode.tokensPerSecond",
        1 / step_s,
        "tok/s",
        "computed",
        f"1 / ({expression}) = 1 / {fmt(step_s * 1e3)} ms: {bound}, per sequence",
    )


def fmt(value: float) -> str:
    """Compact, readable number for decision details."""
    if value == 0:
        return "0"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:.3g}"


def render_text(decisions: list[Decision]) -> str:
    """One line per decision, aligned, for `explain` and Events."""
    width = max((len(d.step) for d in decisions), default=0)
    lines = []
    for d in decisions:
        value = (
            ""
            if d.value is None
            else (fmt(d.value) if isinstance(d.value, float | int) else str(d.value))
        )
        unit = f" {d.unit}" if d.unit and value else ""
        lines.append(f"{d.step:<{width}}  {value}{unit}  [{d.source}]  {d.detail}".rstrip())
    return "\n".join(lines)
