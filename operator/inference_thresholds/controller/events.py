"""Posting decision Events on the CR, so `kubectl describe ith NAME` tells the story."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from .reconcile import EVENT_MESSAGE_LIMIT, DecisionEvent


def post(body: Any, events: Iterable[DecisionEvent]) -> None:
    """Queue each Event through kopf's poster (batched, non-blocking, failure-tolerant)."""
    for ev in events:
        kopf.event(body, type=ev.type, reason=ev.reason, message=ev.message[:EVENT_MESSAGE_LIMIT])
