"""An in-memory NodeApi for agent unit tests.

It applies JSON merge patches (RFC 7386) and bumps resourceVersion the way the
apiserver does; the cluster tests run the same scenarios against the real one.
"""

from __future__ import annotations

import copy
from typing import Any


def merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge(result.get(key), value)
    return result


class MemoryNodes:
    def __init__(self, node: dict[str, Any]) -> None:
        self.node = node
        self.patches: list[dict[str, Any]] = []

    def get_node(self, name: str) -> dict[str, Any]:
        assert name == self.node["metadata"]["name"]
        return copy.deepcopy(self.node)

    def patch_node(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append(patch)
        self.node = merge(self.node, patch)
        version = int(self.node["metadata"]["resourceVersion"]) + 1
        self.node["metadata"]["resourceVersion"] = str(version)
        return copy.deepcopy(self.node)


def node(labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "node-a",
            "resourceVersion": "100",
            "labels": {"kubernetes.io/hostname": "node-a", **(labels or {})},
        },
        "status": {"allocatable": {"cpu": "250"}},
    }
