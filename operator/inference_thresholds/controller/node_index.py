"""What the operator knows about each node, and which CRs a node change affects.

The records live in ``OperatorState.nodes``: listed at startup before any handler runs,
so a restarted operator never reconciles against a half-listed cluster, then kept
current by Node events (``wakeups.py``). Nothing is stored on the Node objects.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..api.crd import NodeSelector
from .classes import class_key, class_name
from .hardware_source import NodeHardware, node_hardware
from .selector import matches

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    hardware: NodeHardware
    class_key: str
    class_name: str


def node_record(node: Mapping[str, Any]) -> NodeRecord:
    meta = node.get("metadata") or {}
    hardware = node_hardware(node)
    return NodeRecord(
        name=str(meta.get("name", "")),
        labels=dict(meta.get("labels") or {}),
        hardware=hardware,
        class_key=class_key(hardware.profile),
        class_name=class_name(hardware.profile),
    )


@dataclass
class Selection:
    """What one CR selected at its last reconcile: its selector and node -> class key."""

    selector: NodeSelector | None
    nodes: dict[str, str] = field(default_factory=dict)


def affected_by_node(
    selections: Mapping[K, Selection], node_name: str, record: NodeRecord | None
) -> set[K]:
    """CRs whose result can change because this node appeared, changed or went away.

    A CR is affected when the node enters or leaves its selection, or stays selected
    with different hardware. ``record`` is None for a deleted node.
    """
    hit: set[K] = set()
    for key, sel in selections.items():
        if sel.selector is None:
            continue  # invalid spec: nodes do not matter until the spec is fixed
        was = node_name in sel.nodes
        now = record is not None and matches(sel.selector, record.labels)
        if was != now or (now and record is not None and sel.nodes[node_name] != record.class_key):
            hit.add(key)
    return hit
