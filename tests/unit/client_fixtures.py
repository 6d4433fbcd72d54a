"""Helpers for the client tests: thresholds documents laid out like a mounted ConfigMap."""

from __future__ import annotations

import os
from pathlib import Path

from inference_thresholds.api.result import Thresholds
from inference_thresholds.api.thresholds_document import (
    DEFAULT_ENV_PREFIX,
    DOCUMENT_KEY,
    ClassEntry,
    ThresholdsDocument,
)
from inference_thresholds.controller.configmap import render_data

SMALL = Thresholds(
    min_tokens_per_second=5.2,
    max_time_to_first_token_ms=2500,
    max_latency_ms=30000,
    max_memory_usage_mb=2048,
)
BIG = Thresholds(
    min_tokens_per_second=21.0,
    max_time_to_first_token_ms=600,
    max_latency_ms=8000,
    max_memory_usage_mb=2048,
    min_speedup_factor=2.0,
)


def two_class_document(*, legacy: bool = False) -> ThresholdsDocument:
    """Nodes listed per class, as the operator writes them; ``legacy``: in the node ->
    class map older operators wrote (which can also name a class the document lacks)."""
    members = {"cpu-small": ["n-small"], "cpu-big": ["n-big-1", "n-big-2"], "tiny": ["n-tiny"]}
    doc = ThresholdsDocument(
        owner="bitnet-edge",
        namespace="default",
        generation=3,
        content_hash="sha256:test",
        effective_class="cpu-small",
        effective=SMALL,
        classes={
            "cpu-small": ClassEntry(
                hardware_summary="4 cores AVX2", node_count=1, feasible=True, thresholds=SMALL
            ),
            "cpu-big": ClassEntry(
                hardware_summary="32 cores AVX-512", node_count=2, feasible=True, thresholds=BIG
            ),
            "tiny": ClassEntry(
                hardware_summary="1 core, 1 GiB",
                node_count=1,
                feasible=False,
                reason="needs 1.3 GiB, node has 1.0 GiB",
            ),
        },
    )
    if legacy:
        return doc.model_copy(
            update={"nodes": {n: c for c, ns in members.items() for n in ns} | {"n-orphan": "gone"}}
        )
    classes = {c: e.model_copy(update={"nodes": members[c]}) for c, e in doc.classes.items()}
    return doc.model_copy(update={"classes": classes})


def envfrom(doc: ThresholdsDocument, prefix: str = DEFAULT_ENV_PREFIX) -> dict[str, str]:
    """What ``envFrom`` of the operator's ConfigMap injects: every key but the document."""
    return {k: v for k, v in render_data(doc, prefix).items() if k != DOCUMENT_KEY}


def write_configmap_volume(
    directory: Path, doc: ThresholdsDocument | str, *, with_env_keys: bool = True
) -> Path:
    """Lay out files as the kubelet does: a timestamped dir, ``..data`` link, key links;
    the keys are the operator's own rendering (``with_env_keys=False``: the document only)."""
    data = directory / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    keys: dict[str, str] = {}
    if isinstance(doc, ThresholdsDocument):
        keys = render_data(doc, DEFAULT_ENV_PREFIX)
        if not with_env_keys:
            keys = {DOCUMENT_KEY: keys[DOCUMENT_KEY]}
    else:
        keys[DOCUMENT_KEY] = doc
    for key, text in keys.items():
        (data / key).write_text(text, encoding="utf-8")
    os.symlink(data.name, directory / "..data")
    for key in keys:
        os.symlink(f"..data/{key}", directory / key)
    return directory
