"""Decision Events: what the operator decided, posted on the CR for `kubectl describe ith`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import kopf

EVENT_MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class DecisionEvent:
    type: str  # Normal or Warning
    reason: str
    message: str

    def __post_init__(self) -> None:
        # Every Event is bounded where it is made, whatever text (hostile input included) fed it.
        if len(self.message) > EVENT_MESSAGE_LIMIT:
            cut = self.message[: EVENT_MESSAGE_LIMIT - 3] + "..."
            object.__setattr__(self, "message", cut)


Poster = Callable[[Sequence[DecisionEvent]], None]
"""Posts Events on one CR (the handlers bind it to the CR's body)."""


def kopf_poster(body: Any, logger: logging.Logger | logging.LoggerAdapter[Any]) -> Poster:
    """Events through kopf's poster (batched, non-blocking, failure-tolerant), and logged."""

    def post(events: Sequence[DecisionEvent]) -> None:
        for ev in events:
            kopf.event(body, type=ev.type, reason=ev.reason, message=ev.message)
            logger.info("%s: %s", ev.reason, ev.message)

    return post
