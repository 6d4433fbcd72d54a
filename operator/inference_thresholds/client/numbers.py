"""Strict parsing of threshold and observed numbers (env strings, CLI flags, files)."""

from __future__ import annotations

import math

from .errors import ThresholdsError


def parse_threshold(raw: str, *, source: str, fix: str) -> float:
    """A threshold value: a finite number > 0.

    ``source`` names the variable or file the string came from; ``fix`` says what to
    change. Both end up in the error so a pod log alone tells the operator what to do.
    """
    value = _parse_finite(raw, source=source, fix=fix)
    if value <= 0:
        raise ThresholdsError(
            f"{source}={raw!r} must be a positive number (a threshold of {value:g} "
            f"would disable or invert the check); {fix}",
            source=source,
        )
    return value


def parse_observed(raw: str | float | int, *, source: str) -> float:
    """An observed measurement: a finite number >= 0 (0 tok/s is a real, failing result)."""
    value = _parse_finite(raw, source=source, fix="pass the measured value as a plain number")
    if value < 0:
        raise ThresholdsError(
            f"{source}={raw!r} is negative; measurements are >= 0 — pass the measured value",
            source=source,
        )
    return value


def _parse_finite(raw: str | float | int, *, source: str, fix: str) -> float:
    if isinstance(raw, bool):  # bool is an int subclass; True is not a measurement
        raise ThresholdsError(f"{source}={raw!r} is not a number; {fix}", source=source)
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        text = raw.strip()
        try:
            value = float(text)
        except ValueError:
            raise ThresholdsError(
                f"{source}={raw!r} is not a number; {fix}", source=source
            ) from None
    if not math.isfinite(value):
        raise ThresholdsError(
            f"{source}={raw!r} is not a finite number (NaN/inf are rejected); {fix}",
            source=source,
        )
    return value
