"""When a CR's reconcile loop runs a pass: at once for an isolated change, once per burst.

Leading edge: a change that comes after a quiet spell (no pass started for ``debounce``
seconds) is due at once, so an isolated edit costs only the work itself (the API floor
plus the pass). Trailing debounce: changes that follow a pass closely are a burst; they
are due once no change came for ``debounce`` seconds, and at the latest ``max_delay``
after the first of them, so a steady stream cannot starve the CR.

``Debounce`` holds the rule and takes the time as an argument (unit-tested with a
controllable clock); ``Trigger`` is the asyncio face the reconcile loop waits on and the
watch handlers ``set()``. Only the event loop that owns it may call it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class Debounce:
    """The leading-edge / trailing-debounce rule, free of clocks and I/O."""

    debounce: float
    max_delay: float
    last_pass: float = -math.inf
    first_change: float | None = None
    last_change: float | None = None

    @property
    def pending(self) -> bool:
        return self.first_change is not None

    def change(self, now: float) -> None:
        if self.first_change is None:
            self.first_change = now
        self.last_change = now

    def due_in(self, now: float) -> float | None:
        """Seconds until a pass is due (0: now); None when no change is pending."""
        if self.first_change is None or self.last_change is None:
            return None
        if self.first_change - self.last_pass >= self.debounce:
            return 0.0  # leading edge: the first change after a quiet spell
        due = min(self.last_change + self.debounce, self.first_change + self.max_delay)
        return max(0.0, due - now)

    def passed(self, now: float) -> None:
        """A pass starts now: every change seen so far is in it."""
        self.last_pass = now
        self.first_change = self.last_change = None


class Trigger:
    """Wakes one CR's reconcile loop; ``set`` on a change, ``wait`` for the next pass."""

    def __init__(self, debounce: float, max_delay: float, clock: Clock = time.monotonic) -> None:
        self.rule = Debounce(debounce, max(max_delay, debounce))
        self._clock = clock
        self._changed = asyncio.Event()

    def set(self) -> None:
        self.rule.change(self._clock())
        self._changed.set()

    def is_set(self) -> bool:
        return self.rule.pending

    def clear(self) -> None:
        """Drop pending changes without counting a pass."""
        self.rule.first_change = self.rule.last_change = None

    def passed(self) -> None:
        """The loop starts a pass: the changes seen so far are in it."""
        self.rule.passed(self._clock())

    async def wait(self, stop: Callable[[], Awaitable[object]], timeout: float) -> bool:
        """Until a pass is due (True), ``timeout`` passes or ``stop()`` completes (False)."""
        deadline = self._clock() + timeout
        while True:
            now = self._clock()
            due = self.rule.due_in(now)
            if due == 0.0:
                return True
            wait = min(math.inf if due is None else due, deadline - now)
            if wait <= 0:
                return False
            self._changed.clear()
            if await _first(self._changed.wait, stop, wait) == "stop":
                return False


async def _first(
    changed: Callable[[], Awaitable[object]], stop: Callable[[], Awaitable[object]], timeout: float
) -> str:
    """'changed', 'stop' or 'timeout': whichever comes first."""
    waiters = {
        asyncio.ensure_future(changed()): "changed",
        asyncio.ensure_future(stop()): "stop",
    }
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    if any(waiters[w] == "stop" for w in done):
        return "stop"
    return "changed" if done else "timeout"
