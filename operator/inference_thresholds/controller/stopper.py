"""How a per-CR loop is told to stop, and why (the part of kopf's ``DaemonStopped`` we use)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
from dataclasses import dataclass


class StopReason(enum.Enum):
    DELETED = "deleted"
    SWITCHED_OFF = "switched off"
    SHUTDOWN = "operator shutdown"


class Stopper:
    """What a loop waits on: set once, with the reason (as kopf's ``DaemonStopped``)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: StopReason | None = None

    def __bool__(self) -> bool:
        return self._event.is_set()

    def stop(self, reason: StopReason) -> None:
        if self.reason is None:
            self.reason = reason
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Until stopped or ``timeout`` seconds; returns whether it is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        return bool(self)


@dataclass
class Loop:
    """A running per-CR loop and its stopper."""

    task: asyncio.Task[None]
    stopper: Stopper
