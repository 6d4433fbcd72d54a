"""How names and numbers are written as text, one helper per idea.

Shared by the operator, the node agent and the pod-side client (standard library only).
"""

from __future__ import annotations

import math
import re


def slug(text: str) -> str:
    """Lower case, each run of other characters as '-': 'NVIDIA A100-SXM4' -> 'nvidia-a100-sxm4'"""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def decimal_text(value: float, places: int) -> str:
    """A machine-read value (label, env key): integers without '.0', others to ``places``
    decimals without trailing zeros, never an exponent: 5000.0 -> '5000', 2.05002 -> '2.05'."""
    if abs(value - round(value)) < 1e-9:
        return str(round(value))
    return f"{value:.{places}f}".rstrip("0").rstrip(".")


def readable_number(value: float | None, significant: int) -> str:
    """A number in a message people read: ``significant`` digits, no trailing zeros and no
    exponent at or above 1 (5400, 48.3, 2.05, not 5.4e+03); '-' for None."""
    if value is None:
        return "-"
    if value == 0 or not math.isfinite(value) or abs(value) < 1:
        return f"{value:.{significant}g}"
    integer_digits = math.floor(math.log10(abs(value))) + 1
    text = f"{value:.{max(0, significant - integer_digits)}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
