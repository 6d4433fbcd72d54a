"""The operator's own list/watch of Nodes, feeding ``NodeIndex`` (not a kopf handler).

Why not kopf: kopf keeps each object's last body in its per-object worker and has no
metadata-only watch; a Node is 10-30 KB of status (images, conditions) and managedFields
of which the operator reads a few hundred bytes. Here each page and each event is cut
down to ``NodeInputs`` at once (``node_index.py``), so memory follows the node count,
not the body size.

What is read: labels and the agent's profile annotation always; ``status.allocatable``
(cpu, memory, the device plugin's nvidia.com/* resources) and ``nodeInfo.architecture``
unless ``metadata_only`` is set. Metadata-only asks the apiserver for
``PartialObjectMetadata`` (as controller-runtime's metadata client does): cheaper to send
and parse, but nodes then need the agent's or GFD/NFD labels, since resources are not
seen.

The protocol is client-go's reflector: a paged list (``limit``/``continue``) gives the
items and a resourceVersion; a watch from that version with bookmarks follows. A watch
that ends (server timeout, dropped connection) resumes from the last version seen,
events or bookmarks, without a list; "410 Gone" (the version was compacted) lists again
and reconciles the index with the result (nodes gone meanwhile are deleted).

The list runs in a thread and reads one page ahead: the next page's ``continue`` token is
taken from the head of the page just read (the apiserver writes the list's metadata before
its items), so the apiserver renders page n+1 while page n is parsed, and the token is
checked against the parsed page. At 10,000 realistic Nodes on two cores that took the
list from 10.5-11.6 s to 9.2-10.3 s (the apiserver rendering 232 MB of JSON is the floor);
it holds two raw pages at most.

The watch runs in a thread (blocking reads); every change is applied on the event loop,
which owns the index.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from .kube import Kube
from .node_index import NodeChange, NodeIndex, NodeInputs, node_inputs

log = logging.getLogger(__name__)

NODES = "/api/v1/nodes"
_META_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
_META_ITEM = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
Listener = Callable[[NodeChange], None]
PageSink = Callable[[list["NodeInputs"]], None]
# The list's own metadata at the head of a page: flat (resourceVersion, continue,
# remainingItemCount), before "items".
_LIST_HEAD = re.compile(rb'\{"kind":"[^"]*","apiVersion":"[^"]*","metadata":\{([^{}]*)\}')
_CONTINUE = re.compile(rb'"continue":"([^"\\]*)"')


class Gone(Exception):
    """The resourceVersion we hold is too old (HTTP 410): list again."""


@dataclass
class WatchCounts:
    """What the watch did, for metrics and tests."""

    lists: int = 0  # full lists (the first one and every relist after 410 Gone)
    watches: int = 0  # watch requests (resumes from a resourceVersion included)
    events: int = 0
    bookmarks: int = 0
    changes: int = 0  # events that changed what CRs depend on (labels or hardware)
    errors: int = 0


class NodeWatch:
    """List, then watch, every Node; the index is current once ``start`` returns."""

    def __init__(
        self,
        kube: Kube,
        *,
        metadata_only: bool = False,
        page: int = 100,
        watch_seconds: tuple[int, int] = (300, 600),
        max_backoff: float = 30.0,
    ) -> None:
        self.kube = kube
        self.metadata_only = metadata_only
        self.page = page
        self.watch_seconds = watch_seconds
        self.max_backoff = max_backoff
        self.index = NodeIndex()
        self.counts = WatchCounts()
        self.resource_version = ""
        self.listener: Listener | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None

    # --- on the event loop ------------------------------------------------------------------

    async def start(self, retry_seconds: float | None = None) -> None:
        """List every node into the index, then keep it current from a watch thread.

        A failed listing (the apiserver down, no RBAC for Nodes yet) raises, or with
        ``retry_seconds`` is logged and tried again that much later until it succeeds.
        """
        self._loop = asyncio.get_running_loop()
        began = time.monotonic()
        while True:
            try:
                await self._list_into_index()
                break
            except Exception as exc:
                if retry_seconds is None:
                    raise
                self.counts.errors += 1
                log.warning(
                    "listing Nodes failed (%s: %s); again in %.0f s",
                    type(exc).__name__,
                    str(exc)[:300],
                    retry_seconds,
                )
                await asyncio.sleep(retry_seconds)
        log.info(
            "listed %d nodes (%d shapes, %s) in %.1f s",
            len(self.index),
            self.index.shapes,
            "metadata only" if self.metadata_only else "labels, annotations, resources",
            time.monotonic() - began,
        )
        self._thread = threading.Thread(target=self._run, name="node-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the watch thread: its blocked read ends at once (the socket is shut down;
        closing it from here would wait for the reading thread)."""
        self._stopping.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except (OSError, ValueError):  # already closed by the reader
                log.debug("shutting the node watch down", exc_info=True)

    def _apply(self, name: str, inputs: NodeInputs | None) -> None:
        change = self.index.apply(name, inputs)
        if change is not None:
            self.counts.changes += 1
            if self.listener is not None:
                self.listener(change)

    async def _list_into_index(self) -> None:
        """List every node into the index a page at a time (see ``_list``)."""
        self.counts.lists += 1
        self._loop = asyncio.get_running_loop()
        listed, version = await asyncio.to_thread(self._list, self._post_page)
        # The pages were posted before the thread returned: they are in the index now.
        self._drop_unlisted(listed)
        self.resource_version = version

    def _post_page(self, page: list[NodeInputs]) -> None:
        self._post(self._apply_page, page)

    def _apply_page(self, page: list[NodeInputs]) -> None:
        for inputs in page:
            self._apply(inputs.name, inputs)

    def _drop_unlisted(self, listed: set[str]) -> None:
        """After a complete list: the nodes it did not return are gone."""
        for name in [n for n in self.index if n not in listed]:
            self._apply(name, None)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: the operator is exiting
            self._stopping.set()

    # --- in the watch thread ----------------------------------------------------------------

    def _list(self, sink: PageSink) -> tuple[set[str], str]:
        """Every page of the node list, cut down and handed to ``sink`` as it comes, while
        the next one is fetched: (the names listed, the list's resourceVersion).

        Pages are cut down at once and go to the index one by one: holding every page's
        inputs until the list ended held 10,000 Nodes' labels at once (~150 MB, and the
        operator's peak RSS stayed there)."""
        listed: set[str] = set()
        version = ""
        with ThreadPoolExecutor(1, thread_name_prefix="node-list") as ahead:
            pending: Future[bytes] | None = ahead.submit(self._fetch, "")
            while pending is not None:
                raw = pending.result()
                hint = _continue_hint(raw)
                pending = ahead.submit(self._fetch, hint) if hint else None
                page, token, version = _cut(raw, version)
                del raw
                if token != hint:  # the head misled us: fetch the page the list names
                    if pending is not None and not pending.cancel():
                        pending.exception()  # let the fetch under way end; its page is dropped
                    pending = ahead.submit(self._fetch, token) if token else None
                sink(page)
                listed.update(inputs.name for inputs in page)
        return listed, version

    def _fetch(self, token: str) -> bytes:
        accept = f"{_META_LIST},application/json" if self.metadata_only else "application/json"
        query = [("limit", str(self.page))] + ([("continue", token)] if token else [])
        return self.kube.read("GET", NODES, query=query, accept=accept)

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._watch_once()
                failures = 0
            except Gone:
                log.info("node watch: resourceVersion %s expired; listing again", self._rv())
                failures = self._relist(failures)
            except Exception as exc:
                if self._stopping.is_set():
                    return
                self.counts.errors += 1
                failures += 1
                delay = min(self.max_backoff, 0.5 * 2 ** min(failures, 8))
                log.warning(
                    "node watch broke (%s: %s); again in %.1f s",
                    type(exc).__name__,
                    str(exc)[:200],
                    delay,
                )
                self._stopping.wait(delay * random.uniform(0.8, 1.2))

    def _relist(self, failures: int) -> int:
        """List again (after 410 Gone): each page goes to the index as it comes, the nodes
        the list did not return go once it is complete. A list that breaks midway leaves
        the pages it got applied (newer than what the index held) and is started over."""
        self.counts.lists += 1
        try:
            listed, version = self._list(self._post_page)
        except Exception as exc:
            self.counts.errors += 1
            delay = min(self.max_backoff, 0.5 * 2 ** min(failures + 1, 8))
            log.warning("node list failed (%s); again in %.1f s", str(exc)[:200], delay)
            self._stopping.wait(delay)
            return failures + 1
        self._post(self._drop_unlisted, listed)
        self.resource_version = version
        return 0

    def _rv(self) -> str:
        return self.resource_version or "(none)"

    def _watch_once(self) -> None:
        """One watch request from the last resourceVersion, until the server ends it."""
        if not self.resource_version:
            raise Gone()
        seconds = random.randint(*self.watch_seconds)
        query = [
            ("watch", "1"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self.resource_version),
            ("timeoutSeconds", str(seconds)),
        ]
        accept = f"{_META_ITEM},application/json" if self.metadata_only else "application/json"
        self.counts.watches += 1
        try:
            self._response = self.kube.stream(
                NODES, query=query, accept=accept, read_timeout=seconds + 30
            )
        except ApiException as exc:
            if exc.status == 410:
                raise Gone() from exc
            raise
        try:
            for event in _events(self._response):
                if self._stopping.is_set():
                    return
                self._handle(event)
        finally:
            response, self._response = self._response, None
            response.release_conn()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone()
            raise RuntimeError(f"watch error {code}: {str(obj.get('message'))[:200]}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind == "BOOKMARK":
            self.counts.bookmarks += 1
        elif kind in ("ADDED", "MODIFIED", "DELETED"):
            self.counts.events += 1
            inputs = node_inputs(obj)
            self._post(self._apply, inputs.name, None if kind == "DELETED" else inputs)
        if version:
            self.resource_version = str(version)


def _events(response: Any) -> Iterator[dict[str, Any]]:
    """Watch events, one JSON object per line."""
    for line in response:
        if line.strip():
            yield json.loads(line)


def _continue_hint(raw: bytes) -> str:
    """The continue token as the page's head states it ("" if none or not where expected)."""
    head = _LIST_HEAD.match(raw, 0, 4096)
    found = _CONTINUE.search(head.group(1)) if head else None
    return found.group(1).decode() if found else ""


def _cut(raw: bytes, version: str) -> tuple[list[NodeInputs], str, str]:
    """A page parsed and cut down: (inputs, continue token, the list's resourceVersion)."""
    body = json.loads(raw) if raw else {}
    page = [node_inputs(item) for item in body.get("items") or []]
    meta = body.get("metadata") or {}
    return page, str(meta.get("continue") or ""), str(meta.get("resourceVersion") or version)
