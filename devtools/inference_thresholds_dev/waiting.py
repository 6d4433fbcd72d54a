"""Awaiting a condition with a deadline (never a fixed sleep as synchronisation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    every: float = 0.5,
    error: type[Exception] = TimeoutError,
) -> T:
    """``check()``'s first truthy value, polled every ``every`` s; ``error`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
