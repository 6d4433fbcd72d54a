"""Limits on what is read from outside the process: JSON, text and numbers.

Node objects, Prometheus answers and host files are written by someone else, so each is
hostile until bounded: a size before anything is parsed, a nesting depth checked by a
linear scan (``json`` recurses per level and gives up with RecursionError), numbers that
must be finite, and text cut with a visible marker before it is copied into a status,
a ConfigMap, an Event or a label. Standard library only: the operator, the node agent
and the pod-side client share it.
"""

from __future__ import annotations

import json
import math
from typing import Any

TRUNCATION_MARKER = "…[{n} more characters]"


class InputRejected(ValueError):
    """Outside input that breaks a limit; the message says which limit and by how much."""


def json_depth(text: str | bytes, limit: int) -> int:
    """Deepest nesting of ``[``/``{`` outside strings, by one pass without recursion.

    Stops counting once ``limit`` is passed (returns ``limit + 1``), so a pathological
    document costs one scan up to that point and nothing more.
    """
    data = text.encode() if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InputRejected(f"number {clip(text, 40)} does not fit a double")
    return value


def _no_constant(name: str) -> float:
    raise InputRejected(f"{name} is not a JSON number")


def load_json(text: str | bytes, *, max_bytes: int, max_depth: int, what: str) -> Any:
    """Parse JSON from outside: size, depth and every number bounded; ``InputRejected`` else.

    ``what`` names the input in the message ("annotation hw.inference.dev/profile").
    NaN/Infinity literals and numbers beyond a double (1e999) are refused, as are
    integers past Python's digit limit (``ValueError`` from ``int``).
    """
    size = len(text.encode() if isinstance(text, str) else text)
    if size > max_bytes:
        raise InputRejected(f"{what} is {size} bytes, more than the {max_bytes} allowed")
    depth = json_depth(text, max_depth)
    if depth > max_depth:
        raise InputRejected(f"{what} nests deeper than {max_depth} levels")
    try:
        return json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except InputRejected as exc:
        raise InputRejected(f"{what}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # not JSON; or ints beyond the digit limit
        raise InputRejected(f"{what} is not valid JSON: {clip(str(exc), 200)}") from None


def clip(text: str, limit: int) -> str:
    """``text`` if it has at most ``limit`` characters, else its start and a marker saying
    how much was cut (the result never exceeds ``limit``)."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    for _ in range(4):  # the marker's digit count settles within a few rounds
        marker = TRUNCATION_MARKER.format(n=cut)
        keep = limit - len(marker)
        if keep <= 0:
            return text[:limit]
        if len(text) - keep == cut:
            break
        cut = len(text) - keep
    return text[:keep] + TRUNCATION_MARKER.format(n=len(text) - keep)


def printable(text: str, limit: int) -> str:
    """One line of printable text: control characters become spaces, runs of whitespace
    one space, then ``clip``. For names read from devices and files (NVML, /proc)."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return clip(" ".join(cleaned.split()), limit)


def bounded(value: float | None, low: float, high: float) -> float | None:
    """``value`` when it is a finite number within [low, high], else None."""
    if value is None or not math.isfinite(value) or not low <= value <= high:
        return None
    return value
