"""Nodes the operator could not read in full: logged, and a Warning Event on the Node.

``hardware_source`` never fails on a Node: it leaves refused values out and lists them
in ``NodeHardware.rejected``. Here each distinct set of refusals is logged with the
node's name and posted once as an Event where ``kubectl describe node`` shows it (in
``default``, as the kubelet posts node Events). The Event's name is derived from the node
and the problem, so a restarted operator finds it already posted (409) and adds nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from ..bounds import clip
from .events import EVENT_MESSAGE_LIMIT

log = logging.getLogger(__name__)

EVENT_NAMESPACE = "default"
REASON = "NodeHardwareRejected"
COMPONENT = "inference-thresholds-operator"

NodeReport = tuple[dict[str, Any], str]
"""(a Node's name and uid as ``{"metadata": ...}``, the message) to post."""


class EventApi(Protocol):
    def create_event(self, namespace: str, body: Mapping[str, Any]) -> Any: ...


def problem_text(rejected: tuple[str, ...]) -> str:
    return clip("; ".join(rejected), EVENT_MESSAGE_LIMIT - 80) + (
        ". The node is served from its other labels and capacity; fix the values named."
    )


def event_body(node: Mapping[str, Any], message: str, now: datetime) -> dict[str, Any]:
    meta = node.get("metadata") or {}
    name = str(meta.get("name", ""))
    digest = hashlib.sha256(f"{name}\n{message}".encode()).hexdigest()[:12]
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name[:200]}.it-{digest}", "namespace": EVENT_NAMESPACE},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Node",
            "name": name,
            "uid": str(meta.get("uid", "")),
        },
        "reason": REASON,
        "message": message,
        "type": "Warning",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class NodeReports:
    """What was reported per node, so an unchanged bad node is reported once."""

    def __init__(self) -> None:
        self._reported: dict[str, str] = {}

    def due(self, name: str, rejected: tuple[str, ...]) -> str | None:
        """The message to report for this node now, or None (nothing new)."""
        if not rejected:
            self._reported.pop(name, None)
            return None
        message = problem_text(rejected)
        if self._reported.get(name) == message:
            return None
        self._reported[name] = message
        log.warning("node %s: %s", name, message)
        return message

    def forget(self, name: str) -> None:
        self._reported.pop(name, None)


def post(api: EventApi, node: Mapping[str, Any], message: str) -> None:
    """Blocking: the Event on the Node; already posted (409) or refused is only logged."""
    body = event_body(node, message, datetime.now(UTC))
    try:
        api.create_event(EVENT_NAMESPACE, body)
    except ApiException as exc:
        if exc.status != 409:
            name = body["involvedObject"]["name"]
            log.warning("could not post %s on node %s: HTTP %s", REASON, name, exc.status)
    except Exception as exc:  # the report is best effort; the log line above stands
        log.warning("could not post %s: %s", REASON, exc)
