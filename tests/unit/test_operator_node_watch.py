"""The node watch's protocol: paged list, watch from its resourceVersion, resume from the
last event or bookmark, relist on 410 Gone (nodes gone meanwhile deleted), and the
metadata-only Accept header. The apiserver cannot be made to expire a resourceVersion on
demand within a test, so the responses here are scripted in its wire format (the same
watch runs against the real apiserver in tests/cluster/test_node_watch_apiserver.py)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from inference_thresholds.controller import node_watch
from inference_thresholds.controller.node_index import NodeChange
from inference_thresholds.controller.node_watch import Gone, NodeWatch


def _node(name: str, rv: int, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv), "labels": labels}}


class Stream:
    """A watch response: lines of JSON, as the apiserver streams them."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.lines = [json.dumps(e).encode() + b"\n" for e in events]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.lines)

    def release_conn(self) -> None:
        pass


class ScriptedApi:
    """Kube's request/stream, answering from a script of list pages and watch streams."""

    def __init__(self, pages: list[Any], streams: list[list[dict[str, Any]]]):
        self.pages = pages
        self.streams = streams
        self.calls: list[tuple[str, dict[str, str], str]] = []

    def read(self, method: str, path: str, *, query: Any = (), accept: str = "") -> bytes:
        self.calls.append(("list", dict(query), accept))
        page = self.pages.pop(0)
        return page if isinstance(page, bytes) else _wire(page)

    def stream(self, path: str, *, query: Any = (), accept: str = "", read_timeout: float = 0):
        self.calls.append(("watch", dict(query), accept))
        return Stream(self.streams.pop(0))


def _page(items: list[dict[str, Any]], rv: str, token: str = "") -> dict[str, Any]:
    meta = {"resourceVersion": rv, **({"continue": token} if token else {})}
    return {"metadata": meta, "items": items}


def _wire(page: dict[str, Any]) -> bytes:
    """A list page as the apiserver writes it: kind, apiVersion, metadata, then items."""
    return (
        json.dumps({"kind": "NodeList", "apiVersion": "v1", **page})
        .replace(": ", ":")
        .replace(", ", ",")
        .encode()
    )


def _run(watch: NodeWatch, steps: int) -> list[tuple[str | None, str | None]]:
    """Start (list), then run ``steps`` watch requests; the changes the listener saw."""
    seen: list[tuple[str | None, str | None]] = []

    def listener(change: NodeChange) -> None:
        old, new = change.old, change.new
        seen.append(
            (
                None if old is None else f"{old.name}:{old.labels.get('pool')}",
                None if new is None else f"{new.name}:{new.labels.get('pool')}",
            )
        )

    async def scenario() -> None:
        watch.listener = listener
        loop = asyncio.get_running_loop()
        watch._loop = loop
        await watch._list_into_index()
        for _ in range(steps):
            try:
                await asyncio.to_thread(watch._watch_once)
            except Gone:
                assert await asyncio.to_thread(watch._relist, 0) == 0
            await asyncio.sleep(0)  # the posted changes run on the loop

    asyncio.run(scenario())
    return seen


def test_paged_list_then_watch_from_its_version_and_resume_from_bookmarks() -> None:
    api = ScriptedApi(
        pages=[_page([_node("a", 5, pool="x")], "10", "tok"), _page([_node("b", 7)], "10")],
        streams=[
            [
                {"type": "MODIFIED", "object": _node("a", 11, pool="y")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
            ],
            [{"type": "DELETED", "object": _node("b", 16)}],
        ],
    )
    watch = NodeWatch(api, page=1)  # type: ignore[arg-type]
    seen = _run(watch, 2)
    lists = [q for kind, q, _ in api.calls if kind == "list"]
    assert lists == [{"limit": "1"}, {"limit": "1", "continue": "tok"}]
    watches = [q for kind, q, _ in api.calls if kind == "watch"]
    assert [w["resourceVersion"] for w in watches] == ["10", "15"]  # resumed at the bookmark
    assert all(w["allowWatchBookmarks"] == "true" for w in watches)
    assert ("a:y", None) not in seen and ("a:x", "a:y") in seen and ("b:None", None) in seen
    assert sorted(watch.index) == ["a"]
    assert watch.counts.lists == 1 and watch.counts.bookmarks == 1
    assert watch.resource_version == "16"


def test_410_gone_lists_again_and_deletes_what_went_away() -> None:
    gone = {
        "type": "ERROR",
        "object": {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": "too old resource version: 10 (250)",
            "reason": "Expired",
            "code": 410,
        },
    }
    api = ScriptedApi(
        pages=[
            _page([_node("a", 5, pool="x"), _node("b", 6, pool="x")], "10"),
            _page([_node("a", 240, pool="z")], "250"),  # b was deleted while we were away
        ],
        streams=[[gone], [{"type": "MODIFIED", "object": _node("a", 251, pool="w")}]],
    )
    watch = NodeWatch(api)  # type: ignore[arg-type]
    seen = _run(watch, 2)
    assert watch.counts.lists == 2
    assert ("b:x", None) in seen and ("a:x", "a:z") in seen and ("a:z", "a:w") in seen
    assert sorted(watch.index) == ["a"] and watch.index["a"].labels["pool"] == "w"
    watches = [q for kind, q, _ in api.calls if kind == "watch"]
    assert [w["resourceVersion"] for w in watches] == ["10", "250"]


def test_metadata_only_asks_for_partial_object_metadata() -> None:
    api = ScriptedApi(pages=[_page([_node("a", 5)], "10")], streams=[[]])
    watch = NodeWatch(api, metadata_only=True)  # type: ignore[arg-type]
    _run(watch, 1)
    (list_accept,) = [a for kind, _, a in api.calls if kind == "list"]
    (watch_accept,) = [a for kind, _, a in api.calls if kind == "watch"]
    assert list_accept.startswith("application/json;as=PartialObjectMetadataList;g=meta.k8s.io")
    assert watch_accept.startswith("application/json;as=PartialObjectMetadata;g=meta.k8s.io")
    # a server without it answers full objects: the fallback is in the header
    assert list_accept.endswith(",application/json")


def test_the_list_reads_one_page_ahead_and_no_further(monkeypatch: pytest.MonkeyPatch) -> None:
    """The apiserver renders the next page while this one is parsed (its continue token is
    read from the page's head), but pages are handed on as they come: when page n+2 is
    asked for, page n is in the sink (10,000 Nodes' labels held until the list ended were
    the operator's peak RSS)."""
    second_asked = threading.Event()
    sunk_when_asked: list[int] = []
    sunk: list[list[str]] = []
    cut = node_watch._cut

    class Recording(ScriptedApi):
        def read(self, method: str, path: str, *, query: Any = (), accept: str = "") -> bytes:
            sunk_when_asked.append(len(sunk))
            if len(sunk_when_asked) == 2:
                second_asked.set()
            return super().read(method, path, query=query, accept=accept)

    def parse(raw: bytes, version: str) -> Any:
        if not sunk:  # page 1 is parsed only once page 2 is on its way
            assert second_asked.wait(10), "page 2 was not asked for before page 1 was parsed"
        return cut(raw, version)

    monkeypatch.setattr(node_watch, "_cut", parse)

    def sink(page: list[Any]) -> None:
        sunk.append([inputs.name for inputs in page])

    pages = [
        _page([_node("a", 5), _node("b", 6)], "10", "t1"),
        _page([_node("c", 7)], "10", "t2"),
        _page([_node("d", 8)], "10", "t3"),
        _page([_node("e", 9)], "10"),
    ]
    api = Recording(pages=pages, streams=[])
    listed, version = NodeWatch(api, page=2)._list(sink)  # type: ignore[arg-type]
    assert sunk == [["a", "b"], ["c"], ["d"], ["e"]]
    assert all(held >= asked - 1 for asked, held in enumerate(sunk_when_asked))
    tokens = [q.get("continue") for kind, q, _ in api.calls if kind == "list"]
    assert tokens == [None, "t1", "t2", "t3"]
    assert listed == {"a", "b", "c", "d", "e"} and version == "10"


def test_a_page_whose_head_misleads_is_followed_by_the_page_it_names() -> None:
    """The token read ahead is checked against the parsed page: a head that says otherwise
    (a duplicate metadata key; JSON keeps the last) costs at most a fetch, never a page."""
    misleading = (
        b'{"kind":"NodeList","apiVersion":"v1","metadata":{"continue":"wrong"},'
        b'"metadata":{"resourceVersion":"10","continue":"right"},"items":'
        + json.dumps([_node("a", 5)]).encode()
        + b"}"
    )
    # No list metadata at the head: its successor is known only once it is parsed.
    unordered = {"items": [_node("b", 6)], "metadata": {"resourceVersion": "10", "continue": "t"}}
    by_token = {
        "": misleading,
        "wrong": _wire(_page([_node("x", 6)], "10")),
        "right": json.dumps(unordered).encode(),
        "t": _wire(_page([_node("c", 7)], "10")),
    }
    asked: list[str] = []

    class ByToken(ScriptedApi):
        def read(self, method: str, path: str, *, query: Any = (), accept: str = "") -> bytes:
            token = dict(query).get("continue", "")
            asked.append(token)
            return by_token[token]

    sunk: list[str] = []
    api = ByToken(pages=[], streams=[])
    listed, _ = NodeWatch(api)._list(lambda page: sunk.extend(i.name for i in page))  # type: ignore[arg-type]
    assert sunk == ["a", "b", "c"] and listed == {"a", "b", "c"}
    assert [t for t in asked if t != "wrong"] == ["", "right", "t"]


def test_the_index_is_complete_when_the_list_returns() -> None:
    pages = [
        _page([_node("a", 5), _node("b", 6)], "10", "t1"),
        _page([_node("c", 7)], "10", "t2"),
        _page([_node("d", 8)], "10"),
    ]
    watch = NodeWatch(ScriptedApi(pages=pages, streams=[]))  # type: ignore[arg-type]
    asyncio.run(watch._list_into_index())
    assert sorted(watch.index) == ["a", "b", "c", "d"] and watch.resource_version == "10"
