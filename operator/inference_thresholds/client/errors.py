"""Errors the pod-side client raises: each names the file or variable and the fix."""

from __future__ import annotations


class ThresholdsError(ValueError):
    """A thresholds source (file, env variable, observed value) is missing or invalid.

    ``source`` names where the bad value came from (a variable, ``file:field``), so
    callers and the CLI can show it without parsing the message.
    """

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.source = source


class ThresholdsNotFoundError(ThresholdsError):
    """Neither the mounted document nor any threshold variable is present."""
