"""An in-memory stand-in for the operator's narrow API (``reconcile_pass.ReconcileApi``).

ConfigMaps and CR statuses as plain dicts, with the apiserver's optimistic concurrency
(resourceVersion, 409 on a stale PUT or a duplicate POST) and 404s; every write is
recorded so a test can say "no write". The real apiserver runs the same flows in
tests/cluster/test_operator_*.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

Json = dict[str, Any]


class MemoryApi:
    def __init__(self) -> None:
        self.configmaps: dict[tuple[str, str], Json] = {}
        self.statuses: dict[tuple[str, str], Json] = {}
        self.deleted: set[tuple[str, str]] = set()  # CRs gone: their status PATCH is a 404
        self.writes: list[tuple[str, str]] = []  # (verb, what)
        self._version = 100

    def _bump(self, obj: Json) -> Json:
        self._version += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._version)
        return copy.deepcopy(obj)

    def get_configmap(self, namespace: str, name: str) -> Json | None:
        found = self.configmaps.get((namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def create_configmap(self, namespace: str, body: Mapping[str, Any]) -> Json:
        key = (namespace, body["metadata"]["name"])
        if key in self.configmaps:
            raise ApiException(status=409, reason="AlreadyExists")
        self.writes.append(("create", f"configmap {key[1]}"))
        self.configmaps[key] = copy.deepcopy(dict(body))
        return self._bump(self.configmaps[key])

    def replace_configmap(self, namespace: str, name: str, body: Mapping[str, Any]) -> Json:
        have = self.configmaps.get((namespace, name))
        if have is None:
            raise ApiException(status=404, reason="NotFound")
        if body["metadata"].get("resourceVersion") != have["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(("replace", f"configmap {name}"))
        self.configmaps[(namespace, name)] = copy.deepcopy(dict(body))
        return self._bump(self.configmaps[(namespace, name)])

    def delete_configmap(self, namespace: str, name: str, uid: str, resource_version: str) -> None:
        have = self.configmaps.get((namespace, name))
        if have is None:
            raise ApiException(status=404, reason="NotFound")
        if have["metadata"].get("resourceVersion") != resource_version:
            raise ApiException(status=409, reason="Conflict")
        self.writes.append(("delete", f"configmap {name}"))
        del self.configmaps[(namespace, name)]

    def patch_status(
        self, group: str, version: str, plural: str, namespace: str, name: str, status: Json
    ) -> Json:
        if (namespace, name) in self.deleted:
            raise ApiException(status=404, reason="NotFound")
        self.writes.append(("patch", f"{plural} {name} status"))
        self.statuses[(namespace, name)] = copy.deepcopy(status)
        return {"status": status}


def empty_operator_state() -> Any:
    """An ``OperatorState`` with defaults and a client that must make no request."""
    from inference_thresholds.controller.kube import Kube
    from inference_thresholds.controller.metrics import OperatorMetrics
    from inference_thresholds.controller.operator_state import OperatorState
    from inference_thresholds.controller.policy_source import PolicySource
    from inference_thresholds.controller.settings import OperatorConfig

    return OperatorState(
        config=OperatorConfig(),
        kube=Kube(api_client=None),  # type: ignore[arg-type]  # no request is made
        policy=PolicySource(None),
        metrics=OperatorMetrics(),
    )
