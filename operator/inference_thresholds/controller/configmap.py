"""The generated ConfigMap: deterministic rendering and a conflict-aware sync.

Content is a pure function of the thresholds document, so an unchanged document
means no write. We annotate the hash of the data we wrote; data that no longer
matches its annotation was edited by someone else and is restored ("repaired").
A ConfigMap we did not create is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from ..api.crd import API_VERSION, GROUP, KIND
from ..api.node_contract import valid_label_value
from ..api.thresholds_document import (
    CONTENT_HASH_KEY,
    DOCUMENT_KEY,
    PUBLISHED_ENV_KEY,
    ThresholdsDocument,
    env_data,
    published_env,
)
from .kube import ConfigMapApi, Json

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "inference-thresholds"
OWNER_LABEL = f"{GROUP}/owner"
DATA_HASH_ANNOTATION = f"{GROUP}/data-hash"
CONTENT_HASH_ANNOTATION = f"{GROUP}/content-hash"


@dataclass(frozen=True)
class SyncOutcome:
    """What writing the ConfigMap did: created, updated, repaired, unchanged, conflict, failed."""

    action: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("created", "updated", "repaired", "unchanged")

    @property
    def reason(self) -> str:
        """The condition/Event reason of a failed write."""
        return "ConfigMapConflict" if self.action == "conflict" else "ConfigMapWriteFailed"


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str

    def reference(self) -> Json:
        return {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def owner_label_value(name: str) -> str:
    """The CR name, or a hashed shortening when it is no valid label value (> 63 chars)."""
    if valid_label_value(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:54].rstrip('-_.')}-{digest}"


def render_data(doc: ThresholdsDocument, env_prefix: str) -> dict[str, str]:
    """The ConfigMap's data: the document, its effective thresholds as env-style keys, and
    two keys that let the pod-side client tell ``envFrom`` copies (possibly from an older
    ConfigMap: variables are fixed at container start) from variables a user set."""
    env = env_data(doc.effective, env_prefix)
    data = {
        DOCUMENT_KEY: json.dumps(doc.wire(), sort_keys=True, indent=2) + "\n",
        **env,
        CONTENT_HASH_KEY: doc.content_hash,
        PUBLISHED_ENV_KEY: published_env(env),
    }
    return dict(sorted(data.items()))


def data_hash(data: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def desired_configmap(doc: ThresholdsDocument, *, name: str, env_prefix: str, owner: Owner) -> Json:
    data = render_data(doc, env_prefix)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY, OWNER_LABEL: owner_label_value(owner.name)},
            "annotations": {
                DATA_HASH_ANNOTATION: data_hash(data),
                CONTENT_HASH_ANNOTATION: doc.content_hash,
            },
            "ownerReferences": [owner.reference()],
        },
        "data": data,
    }


def _owner_uids(obj: Mapping[str, Any]) -> set[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return {r.get("uid", "") for r in refs if r.get("kind") == KIND}


def _in_sync(existing: Mapping[str, Any], desired: Mapping[str, Any]) -> bool:
    meta, want = existing.get("metadata") or {}, desired["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        (existing.get("data") or {}) == desired["data"]
        and not existing.get("binaryData")
        and all(labels.get(k) == v for k, v in want["labels"].items())
        and all(annotations.get(k) == v for k, v in want["annotations"].items())
        and any(r == want["ownerReferences"][0] for r in meta.get("ownerReferences") or [])
    )


def _merged(existing: Mapping[str, Any], desired: Json) -> Json:
    """Desired content on top of the existing object, keeping other people's metadata."""
    meta = dict(existing.get("metadata") or {})
    want = desired["metadata"]
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": want["name"],
            "namespace": want["namespace"],
            "resourceVersion": meta.get("resourceVersion"),
            "labels": {**(meta.get("labels") or {}), **want["labels"]},
            "annotations": {**(meta.get("annotations") or {}), **want["annotations"]},
            "ownerReferences": [
                *(r for r in meta.get("ownerReferences") or [] if r.get("kind") != KIND),
                *want["ownerReferences"],
            ],
        },
        "data": desired["data"],
    }
    return body


def _tampered(existing: Mapping[str, Any], owner_uid: str) -> bool:
    """Someone else changed what we wrote: data or our metadata no longer as we left it."""
    meta = existing.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    recorded = annotations.get(DATA_HASH_ANNOTATION)
    return (
        recorded is None
        or recorded != data_hash(existing.get("data") or {})
        or bool(existing.get("binaryData"))
        or (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY
        or owner_uid not in _owner_uids(existing)
    )


def sync_configmap(
    kube: ConfigMapApi, desired: Json, owner: Owner, *, previously_written: bool, attempts: int = 4
) -> SyncOutcome:
    """Make the ConfigMap equal to ``desired``; never clobber one we do not own."""
    name = desired["metadata"]["name"]
    ns = owner.namespace
    short = desired["metadata"]["annotations"][CONTENT_HASH_ANNOTATION][:12]
    try:
        for _ in range(attempts):
            existing = kube.get_configmap(ns, name)
            if existing is None:
                try:
                    kube.create_configmap(ns, desired)
                except ApiException as exc:
                    if exc.status == 409:  # created concurrently: read it and decide again
                        continue
                    raise
                if previously_written:
                    return SyncOutcome("repaired", f"ConfigMap {name} was deleted; recreated it")
                return SyncOutcome("created", f"created ConfigMap {name} (content {short})")
            uids = _owner_uids(existing)
            labels = (existing.get("metadata") or {}).get("labels") or {}
            ours_by_label = labels.get(MANAGED_BY_LABEL) == MANAGED_BY and labels.get(
                OWNER_LABEL
            ) == owner_label_value(owner.name)
            if owner.uid not in uids and not ours_by_label and not previously_written:
                holder = (
                    f"owned by another InferenceThresholds ({', '.join(sorted(uids))})"
                    if uids
                    else "not created by this InferenceThresholds"
                )
                return SyncOutcome(
                    "conflict",
                    f"ConfigMap {ns}/{name} exists and is {holder}; it was left untouched. "
                    "Set spec.configMap.name to another name or delete that ConfigMap.",
                )
            # Otherwise it is ours: written by us before, or left over by a deleted
            # InferenceThresholds of the same name (garbage collection pending): adopt it.
            if _in_sync(existing, desired):
                return SyncOutcome("unchanged")
            tampered = previously_written and _tampered(existing, owner.uid)
            try:
                kube.replace_configmap(ns, name, _merged(existing, desired))
            except ApiException as exc:
                if exc.status in (404, 409):  # deleted or changed under us: start over
                    continue
                raise
            if tampered:
                return SyncOutcome(
                    "repaired", f"ConfigMap {name} was edited by hand; restored content {short}"
                )
            return SyncOutcome("updated", f"updated ConfigMap {name} (content {short})")
        return SyncOutcome(
            "failed", f"ConfigMap {name} kept changing under us ({attempts} attempts); will retry"
        )
    except ApiException as exc:
        detail = (exc.body or "")[:300] if isinstance(exc.body, str) else ""
        return SyncOutcome("failed", f"writing ConfigMap {name}: HTTP {exc.status} {detail}")
