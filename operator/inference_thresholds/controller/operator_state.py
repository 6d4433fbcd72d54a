"""What the running operator holds in memory: clients, the node records, and per-CR state.

One ``OperatorState`` per process (kopf's memo carries it to the handlers). Everything
kept for one InferenceThresholds lives in its ``CrState``, so forgetting a CR is one
``forget``. Touched only from the event loop, except the metrics collectors, which read
snapshots from the metrics server's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..api.adaptation import AdaptationStatus
from ..api.crd import InferenceThresholdsStatus
from .kube import Kube
from .metrics import OperatorMetrics
from .node_index import NodeIndex, Selection
from .node_reports import NodeReport, NodeReports
from .policy_source import PolicySource
from .settings import OperatorConfig
from .stopper import Loop
from .trigger import Trigger

CrKey = tuple[str, str]
"""(namespace, name) of an InferenceThresholds."""

# Reconciles running at once. Each holds its plan, document and status until its writes
# are done; unbounded, a start with 500 CRs held all 500 (peak RSS 413 MiB) while the
# thread pool worked through them. More than the pool's threads gains nothing.
MAX_CONCURRENT_RECONCILES = 8
# Prometheus queries of all CRs run on their own threads, never on the default pool the
# reconciles use: a slow endpoint then delays only other CRs' adaptation, never a reconcile.
ADAPTATION_WORKERS = 4


@dataclass(frozen=True)
class Work:
    """Something in flight with a deadline; /healthz fails when one is long overdue."""

    what: str
    started: float  # time.monotonic()
    deadline: float


def new_trigger(config: OperatorConfig) -> Trigger:
    return Trigger(config.debounce_seconds, config.debounce_max_seconds)


class Claims:
    """(namespace, ConfigMap name) -> the CRs whose spec names it. Every ConfigMap event
    asks; a scan of all CRs per event made a start of 2,000 CRs quadratic."""

    def __init__(self) -> None:
        self._by_name: dict[tuple[str, str], set[CrKey]] = {}

    def move(self, key: CrKey, old: str | None, new: str | None) -> None:
        if old is not None:
            holders = self._by_name.get((key[0], old))
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._by_name[(key[0], old)]
        if new is not None:
            self._by_name.setdefault((key[0], new), set()).add(key)

    def of(self, namespace: str, configmap: str) -> list[CrKey]:
        return sorted(self._by_name.get((namespace, configmap), ()))


@dataclass
class CrState:
    """What the operator remembers about one CR between reconciles."""

    key: CrKey = ("", "")
    uid: str = ""
    # The CR as its latest watch event delivered it (the loops read it each pass), kept
    # as compact JSON without managedFields: parsed, a CR with its status is ~50 KB of
    # Python objects, 100 MB for 2,000 CRs; as text ~5 KB. ``body`` parses it per read.
    body_json: str = "{}"
    # Its running loops by kind ("reconcile", "adaptation"); see cr_tasks.py.
    loops: dict[str, Loop] = field(default_factory=dict)
    # Set to wake the CR's reconcile loop (node, spec, ConfigMap or policy changes).
    trigger: Trigger = field(default_factory=lambda: new_trigger(OperatorConfig()))
    # What the last reconcile selected; None until the first one (every node change
    # may matter until then).
    selection: Selection | None = None
    # A reconcile is running: its selection may be about to change.
    in_flight: bool = False
    # The last pass failed and a retry is scheduled: the adaptation loop hands over its
    # state without waking the loop, so its interval cannot defeat the backoff.
    failing: bool = False
    # (uid, status as its wire JSON) we wrote last: the watch may not have delivered it
    # to the loop's body yet when the next reconcile starts. Text, as the body: small.
    written: tuple[str, str] | None = None
    # (uid, data hash, data fingerprint) of the ConfigMap its reconcile is writing or
    # wrote last; set before the write, since the watch may deliver the echo before the
    # write returns (``wakeups._as_written``).
    configmap_content: tuple[str, str, int | None] | None = None
    # The ConfigMap its spec names (from its last valid spec; ``configmap_name``): CRs
    # naming the same one are told about each other, and that ConfigMap's events wake it.
    _configmap: str | None = None
    # The process's index of those names (``OperatorState.claimants``); None on its own.
    claims: Claims | None = field(default=None, repr=False, compare=False)
    # Learned adaptation state: the adaptation loop advances it, planning rebases and
    # applies it, the reconcile writes it to status (the only status writer).
    adaptation: AdaptationStatus | None = None
    # The nodes of each adapted class (from the last plan): per-class node matchers.
    class_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def configmap_name(self) -> str | None:
        return self._configmap

    @configmap_name.setter
    def configmap_name(self, name: str | None) -> None:
        if self.claims is not None and name != self._configmap:
            self.claims.move(self.key, self._configmap, name)
        self._configmap = name

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body_json)
        return parsed

    @body.setter
    def body(self, value: Mapping[str, Any]) -> None:
        meta = {k: v for k, v in (value.get("metadata") or {}).items() if k != "managedFields"}
        slim = {**value, "metadata": meta}
        self.body_json = json.dumps(slim, separators=(",", ":"), default=_plain)

    def remember_written(self, uid: str, status: InferenceThresholdsStatus) -> None:
        self.written = (uid, json.dumps(status.wire(), separators=(",", ":")))

    def written_status(self, uid: str) -> InferenceThresholdsStatus | None:
        if self.written is not None and self.written[0] == uid:
            return InferenceThresholdsStatus.model_validate_json(self.written[1])
        return None


def _plain(value: Any) -> Any:
    """kopf hands bodies as its own mapping views: JSON them as plain dicts."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


@dataclass
class OperatorState:
    """Process-wide operator state, shared by all handlers through kopf's memo."""

    config: OperatorConfig
    kube: Kube
    policy: PolicySource
    metrics: OperatorMetrics
    # Every node's labels and hardware, by name: listed at startup, then kept current by
    # the node watch (node_watch.py, wakeups.py).
    nodes: NodeIndex = field(default_factory=NodeIndex)
    # Nodes reported for refused values, so an unchanged bad Node is reported once.
    node_reports: NodeReports = field(default_factory=NodeReports)
    # Reports due, posted one at a time by a task (lifecycle.py): a watch event never waits.
    node_report_queue: asyncio.Queue[NodeReport] = field(default_factory=asyncio.Queue)
    crs: dict[CrKey, CrState] = field(default_factory=dict)
    slots: asyncio.Semaphore = field(
        default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_RECONCILES)
    )
    adaptation_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(
            ADAPTATION_WORKERS, thread_name_prefix="adaptation"
        )
    )
    inflight: dict[int, Work] = field(default_factory=dict)
    _tokens: Iterator[int] = field(default_factory=itertools.count)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Every per-CR loop task, also those whose CR is already forgotten (stopped at shutdown).
    loop_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    closers: list[Callable[[], object]] = field(default_factory=list)
    claims: Claims = field(default_factory=Claims)

    @contextlib.contextmanager
    def running(self, what: str, budget: float) -> Iterator[None]:
        """Record ``what`` as in flight for at most ``budget`` seconds while the block runs."""
        token = next(self._tokens)
        now = time.monotonic()
        self.inflight[token] = Work(what, now, now + budget)
        try:
            yield
        finally:
            del self.inflight[token]

    def overdue(self, now: float) -> list[Work]:
        """In-flight work past its deadline, oldest first."""
        late = [w for w in list(self.inflight.values()) if now > w.deadline]
        return sorted(late, key=lambda w: w.started)

    def enter(self, key: CrKey, uid: str = "") -> CrState:
        """The CR's state, created when its first event arrives."""
        cr = self.crs.get(key)
        if cr is None:
            cr = self.crs[key] = CrState(
                key=key, uid=uid, trigger=new_trigger(self.config), claims=self.claims
            )
        return cr

    def forget(self, key: CrKey, cr: CrState) -> None:
        """Drop everything held for a CR that was deleted (its loops are being stopped)."""
        # A CR re-created under the same name may already run a new loop: keep its state
        # (its claim is under the same key) and detach the old one from the index.
        if self.crs.get(key) is not cr:
            cr.claims = None
            return
        del self.crs[key]
        self.metrics.state.forget(*key)
        named = cr.configmap_name
        cr.configmap_name = None  # out of the index
        cr.claims = None
        for other in self.claimants(key[0], named):
            self.kick(other)  # a CR that could not write it may now, and no longer shares

    def claimants(self, namespace: str, configmap: str | None) -> list[CrKey]:
        """The CRs of ``namespace`` whose spec names ``configmap``."""
        if configmap is None:
            return []
        return self.claims.of(namespace, configmap)

    def rivals(self, key: CrKey, configmap: str) -> list[str]:
        """Names of the other CRs of the namespace naming ``configmap``."""
        return sorted(k[1] for k in self.claimants(key[0], configmap) if k != key)

    def kick(self, key: CrKey) -> None:
        cr = self.crs.get(key)
        if cr is not None:
            cr.trigger.set()

    def kick_all(self) -> None:
        for cr in self.crs.values():
            cr.trigger.set()

    def selections(self) -> dict[CrKey, Selection]:
        return {k: cr.selection for k, cr in self.crs.items() if cr.selection is not None}

    def adaptation_states(self) -> dict[CrKey, AdaptationStatus]:
        """Called from the metrics thread: may raise RuntimeError if the loop resizes crs."""
        return {k: cr.adaptation for k, cr in list(self.crs.items()) if cr.adaptation is not None}
