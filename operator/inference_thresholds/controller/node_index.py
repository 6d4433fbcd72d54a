"""What the operator knows about each node, and which CRs a node change affects.

The index lives in ``OperatorState.nodes``: filled by the node watch (``node_watch.py``)
before any handler runs, so a restarted operator never reconciles against a half-listed
cluster, then kept current by its events (``wakeups.py``). Nothing is stored on Nodes.

Memory does not grow with what a Node weighs: an event is cut down at once to the inputs
the hardware needs (``NodeInputs``: labels, the agent's profile annotation, a digest of
``status.allocatable``/``capacity``/``nodeInfo.architecture``); images, conditions and
managedFields are dropped with the event. Nodes that differ only in their own labels
(``kubernetes.io/hostname`` and labels valued with the node's name) share one
``NodeShape``: one labels dict, one parsed hardware profile, one class key. A fleet of
10,000 nodes in a few dozen shapes holds a few dozen profiles, and a selector is matched
once per shape, not once per node.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..api.crd import NodeSelector
from ..api.node_contract import PROFILE_ANNOTATION
from .classes import class_key, class_name
from .hardware_source import NodeHardware, node_hardware
from .selector import matches

K = TypeVar("K", bound=Hashable)

# Labels that name the node itself or change on their own (GPU Feature Discovery stamps
# each node with the time of its last run): kept per node, everything else is shared by
# shape. A change to these alone wakes only CRs whose selectors read them.
OWN_LABELS = frozenset({"kubernetes.io/hostname", "nvidia.com/gfd.timestamp"})
# What of status the hardware reads (hardware_source.py, gpu_sources.py): resources and
# the architecture. Bounded: a hostile status cannot make a shape key large.
_MAX_RESOURCES = 256
StatusDigest = tuple[tuple[str, tuple[tuple[str, str], ...]], ...]


@dataclass(frozen=True, slots=True)
class NodeInputs:
    """The part of a Node the operator reads; the rest of the body is never kept."""

    name: str
    labels: Mapping[str, str]
    profile: str | None  # the agent's profile annotation, as written
    status: StatusDigest
    uid: str = ""  # names the Node in a report (node_reports.py); not part of the shape

    def own_labels(self) -> dict[str, str]:
        return {k: v for k, v in self.labels.items() if k in OWN_LABELS or v == self.name}

    def shape_key(self, own: Mapping[str, str]) -> Hashable:
        shared = frozenset((k, v) for k, v in self.labels.items() if k not in own)
        return (shared, self.profile, self.status)

    def as_node(self) -> dict[str, Any]:
        """A Node-shaped dict holding just these inputs (what ``node_hardware`` reads)."""
        annotations = {} if self.profile is None else {PROFILE_ANNOTATION: self.profile}
        status: dict[str, Any] = {}
        for part, items in self.status:
            status[part] = dict(items)
        return {
            "metadata": {
                "name": self.name,
                "labels": dict(self.labels),
                "annotations": annotations,
            },
            "status": status,
        }


def _resources(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        return ()
    items = [(str(k), str(v)) for k, v in list(raw.items())[:_MAX_RESOURCES]]
    return tuple(sorted(items))


def _mapping(raw: Any) -> Mapping[str, Any]:
    """A part of a Node that should be an object; anything else reads as empty (a Node
    is hostile until bounded: ``hardware_source`` names what it refuses)."""
    return raw if isinstance(raw, Mapping) else {}


def node_inputs(node: Mapping[str, Any]) -> NodeInputs:
    """Cut a Node (a plain dict as the API returns it, full or metadata-only) down to
    what the operator reads."""
    meta = _mapping(node.get("metadata"))
    labels = _mapping(meta.get("labels"))
    annotations = _mapping(meta.get("annotations"))
    status = _mapping(node.get("status"))
    digest: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    allocatable = _resources(status.get("allocatable"))
    if allocatable:
        digest.append(("allocatable", allocatable))
    else:  # read only when allocatable is missing (hardware_source: capacity fallback)
        capacity = _resources(status.get("capacity"))
        if capacity:
            digest.append(("capacity", capacity))
    arch = _mapping(status.get("nodeInfo")).get("architecture")
    if arch:
        digest.append(("nodeInfo", (("architecture", str(arch)),)))
    profile = annotations.get(PROFILE_ANNOTATION)
    return NodeInputs(
        name=str(meta.get("name", "")),
        labels={str(k): str(v) for k, v in labels.items()},
        profile=None if profile is None else str(profile),
        status=tuple(digest),
        uid=str(meta.get("uid") or "")[:64],
    )


class NodeLabels(Mapping[str, str]):
    """A node's labels: its shape's shared dict plus its own few (hostname)."""

    __slots__ = ("_own", "_shared")

    def __init__(self, shared: Mapping[str, str], own: Mapping[str, str]) -> None:
        self._shared = shared
        self._own = own

    def __getitem__(self, key: str) -> str:
        own = self._own.get(key)
        return own if own is not None else self._shared[key]

    def __contains__(self, key: object) -> bool:
        return key in self._own or key in self._shared

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (k for k in self._shared if k not in self._own)

    def __len__(self) -> int:
        return len(self._shared) + sum(1 for k in self._own if k not in self._shared)

    def __repr__(self) -> str:
        return f"NodeLabels({dict(self)!r})"


@dataclass(eq=False, slots=True)
class NodeShape:
    """What nodes of one shape share: labels but their own, hardware, class."""

    key: Hashable
    labels: dict[str, str]
    hardware: NodeHardware
    class_key: str
    class_name: str
    members: int = 0
    # Keys some member holds as its own label: a selector reading one is matched per node.
    own_keys: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class NodeRecord:
    name: str
    labels: Mapping[str, str]
    hardware: NodeHardware
    class_key: str
    class_name: str
    shape: NodeShape | None = field(default=None, compare=False, repr=False)
    uid: str = field(default="", compare=False)

    @property
    def own_labels(self) -> Mapping[str, str]:
        return self.labels._own if isinstance(self.labels, NodeLabels) else {}


def _shape(inputs: NodeInputs, own: Mapping[str, str], key: Hashable = None) -> NodeShape:
    hardware = node_hardware(inputs.as_node())
    shared = {k: v for k, v in inputs.labels.items() if k not in own}
    return NodeShape(
        key, shared, hardware, class_key(hardware.profile), class_name(hardware.profile)
    )


def node_record(node: Mapping[str, Any]) -> NodeRecord:
    """One node's record, on its own (no shape shared with other nodes)."""
    inputs = node_inputs(node)
    shape = _shape(inputs, {})
    return NodeRecord(
        inputs.name,
        inputs.labels,
        shape.hardware,
        shape.class_key,
        shape.class_name,
        uid=inputs.uid,
    )


class _Records(Mapping[str, NodeRecord]):
    """Node records by name (read side of the index and of its snapshots)."""

    _records: dict[str, NodeRecord]

    def __getitem__(self, name: str) -> NodeRecord:
        return self._records[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)


class NodeIndex(_Records):
    """Every node's record by name, nodes of one shape sharing it; mutated on the event
    loop only; ``snapshot()`` gives planning threads an immutable view."""

    def __init__(self) -> None:
        self._records = {}
        self._shapes: dict[Hashable, NodeShape] = {}
        self._snapshot: NodeSnapshot | None = None

    @property
    def shapes(self) -> int:
        return len(self._shapes)

    def apply(self, name: str, inputs: NodeInputs | None) -> NodeChange | None:
        """A node was added or changed (``inputs``) or deleted (``None``).

        Returns the change when its labels or hardware changed, else None.
        """
        old = self._records.get(name)
        if inputs is None:
            if old is None:
                return None
            del self._records[name]
            self._release(old)
            self._snapshot = None
            return NodeChange(old, None)
        own = inputs.own_labels()
        key = inputs.shape_key(own)
        shape = self._shapes.get(key)
        if shape is not None and old is not None and old.shape is shape and old.own_labels == own:
            return None  # a heartbeat or someone's annotation: nothing we read changed
        if shape is None:
            shape = self._shapes[key] = _shape(inputs, own, key)
        shape.members += 1
        shape.own_keys.update(own)
        new = NodeRecord(
            name,
            NodeLabels(shape.labels, own) if own else shape.labels,
            shape.hardware,
            shape.class_key,
            shape.class_name,
            shape,
            inputs.uid,
        )
        self._records[name] = new
        if old is not None:
            self._release(old)
        self._snapshot = None
        return NodeChange(old, new)

    def _release(self, record: NodeRecord) -> None:
        shape = record.shape
        if shape is None:
            return
        shape.members -= 1
        if shape.members <= 0:
            self._shapes.pop(shape.key, None)

    def snapshot(self) -> NodeSnapshot:
        """The current nodes, immutable (shared until the next change)."""
        if self._snapshot is None:
            self._snapshot = NodeSnapshot(dict(self._records))
        return self._snapshot


class NodeSnapshot(_Records):
    """An immutable view of the nodes at one moment, grouped by shape for selection."""

    def __init__(self, records: dict[str, NodeRecord]) -> None:
        self._records = records
        shapes: dict[int, tuple[NodeShape, list[NodeRecord]]] = {}
        self._loose: list[NodeRecord] = []  # records made outside an index
        for rec in records.values():
            if rec.shape is None:
                self._loose.append(rec)
            else:
                shapes.setdefault(id(rec.shape), (rec.shape, []))[1].append(rec)
        self._groups = [
            (shape.labels, frozenset(shape.own_keys), tuple(recs))
            for shape, recs in shapes.values()
        ]

    def select(self, selector: NodeSelector) -> list[NodeRecord]:
        """The nodes the selector matches, by name; one match per shape unless the
        selector reads a key some node of the shape holds as its own label."""
        keys = set(selector.match_labels) | {e.key for e in selector.match_expressions}
        out = [r for r in self._loose if matches(selector, r.labels)]
        for shared, own_keys, recs in self._groups:
            if keys & own_keys:
                out.extend(r for r in recs if matches(selector, r.labels))
            elif matches(selector, shared):
                out.extend(recs)
        out.sort(key=lambda r: r.name)
        return out


def select(nodes: Mapping[str, NodeRecord], selector: NodeSelector) -> list[NodeRecord]:
    """The nodes a selector matches, sorted by name (fast on a ``NodeSnapshot``)."""
    if isinstance(nodes, NodeSnapshot):
        return nodes.select(selector)
    if isinstance(nodes, NodeIndex):
        return nodes.snapshot().select(selector)
    return [nodes[n] for n in sorted(nodes) if matches(selector, nodes[n].labels)]


@dataclass(frozen=True)
class NodeChange:
    """A node went from ``old`` (None: added) to ``new`` (None: deleted)."""

    old: NodeRecord | None
    new: NodeRecord | None

    @property
    def name(self) -> str:
        return (self.new or self.old).name  # type: ignore[union-attr]

    @property
    def hardware(self) -> bool:
        """Added, deleted, or its hardware class changed."""
        return self.old is None or self.new is None or self.old.class_key != self.new.class_key

    @property
    def keys(self) -> frozenset[str]:
        """The label keys whose value changed (every key when added or deleted)."""
        if self.old is None or self.new is None:
            return frozenset((self.old or self.new).labels)  # type: ignore[union-attr]
        a, b = self.old.labels, self.new.labels
        if self.old.shape is not None and self.old.shape is self.new.shape:
            a, b = self.old.own_labels, self.new.own_labels  # the shared part is the same
        return frozenset(k for k in {*a, *b} if a.get(k) != b.get(k))

    def only_own_labels(self) -> bool:
        """Only labels like the hostname or GFD's timestamp changed."""
        return not self.hardware and self.keys <= OWN_LABELS


def selector_keys(selector: NodeSelector | None) -> frozenset[str]:
    if selector is None:
        return frozenset()
    return frozenset(selector.match_labels) | {e.key for e in selector.match_expressions}


@dataclass
class Selection:
    """What one CR selected at its last reconcile: its selector and how many nodes."""

    selector: NodeSelector | None
    count: int = 0
    keys: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.keys = selector_keys(self.selector)


def affected_by_node(selections: Mapping[K, Selection], change: NodeChange) -> set[K]:
    """CRs whose result can change because of this node change.

    A CR is affected when the node enters or leaves its selection, or stays selected
    with different hardware. Comparing the node's previous record (not the CR's
    remembered node list) is enough: any change a CR has not seen was, step by step, one
    of these events. A CR none of whose selector's keys changed is skipped unmatched.
    """
    hit: set[K] = set()
    old, new = change.old, change.new
    keys = change.keys
    for key, sel in selections.items():
        if sel.selector is None:
            continue  # invalid spec: nodes do not matter until the spec is fixed
        if not change.hardware and not (sel.keys & keys):
            continue  # membership and class both unchanged
        was = old is not None and matches(sel.selector, old.labels)
        now = new is not None and matches(sel.selector, new.labels)
        if was != now or (
            now and old is not None and new is not None and old.class_key != new.class_key
        ):
            hit.add(key)
    return hit
