"""The document the operator writes into each generated ConfigMap and pods read back.

Shared by the operator (writer) and the pod-side client (reader), so it lives with
the API types and imports nothing beyond pydantic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Literal

from pydantic import ConfigDict, Field

from ..text import decimal_text
from .base import WireModel
from .result import Complexity, Expected, Thresholds

DOCUMENT_KEY = "thresholds.json"
"""ConfigMap key holding the JSON document."""

DEFAULT_ENV_PREFIX = "BITNET_"
"""The seed's variable prefix, so existing validation code keeps working."""

# Env-style key suffixes; with the default prefix they are the legacy BITNET_* names.
ENV_KEYS: dict[str, str] = {
    "min_tokens_per_second": "MIN_TOKENS_PER_SECOND",
    "max_latency_ms": "MAX_LATENCY_MS",
    "max_memory_usage_mb": "MAX_MEMORY_MB",
    "min_speedup_factor": "MIN_SPEEDUP_FACTOR",
    "max_time_to_first_token_ms": "MAX_TIME_TO_FIRST_TOKEN_MS",
}


def env_variables(prefix: str = DEFAULT_ENV_PREFIX) -> dict[str, str]:
    """Thresholds field -> variable: min_tokens_per_second -> BITNET_MIN_TOKENS_PER_SECOND."""
    return {field: prefix + suffix for field, suffix in ENV_KEYS.items()}


def env_fields(prefix: str = DEFAULT_ENV_PREFIX) -> dict[str, str]:
    """The inverse of ``env_variables``: variable -> Thresholds field."""
    return {var: field for field, var in env_variables(prefix).items()}


def document_text(doc: ThresholdsDocument) -> str:
    """The document as the ConfigMap holds it (``DOCUMENT_KEY``): indented, with each
    class's node list on one line (a thousand node names one per line would be most of
    the text to scroll)."""
    return wire_text(doc.wire())


def wire_text(wire: dict[str, object]) -> str:
    """``document_text`` of a document's wire form: what ``json.dumps(wire, sort_keys=True,
    indent=2)`` gives, byte for byte, except that each class's node list is on one line.
    Rendered here rather than by json's indenting encoder, which is pure Python: 0.83 ->
    0.55 ms for a 45 KB document (strings go through json's C escaper)."""
    classes = wire.get("classes")
    if isinstance(classes, dict):
        wire = {**wire, "classes": {k: _one_line_nodes(v) for k, v in classes.items()}}
    out: list[str] = []
    _indented(wire, "\n", out)
    out.append("\n")
    return "".join(out)


class _OneLine(list[object]):
    """A list written on one line (``json.dumps``'s default separators)."""


def _indented(value: object, newline: str, out: list[str]) -> None:
    """Append ``value`` as json.dumps(indent=2, sort_keys=True) writes it at the depth
    whose line break (with its indentation) is ``newline``."""
    if isinstance(value, str):
        out.append(_escaped(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        inner = newline + "  "
        separator = "{" + inner
        for key in sorted(value):
            item = value[key]
            out.append(separator)
            out.append(_escaped(key))
            out.append(": ")
            _indented(item, inner, out)
            separator = "," + inner
        out.append(newline + "}")
    elif isinstance(value, _OneLine):
        out.append(json.dumps(value))
    elif isinstance(value, list):
        if not value:
            out.append("[]")
            return
        inner = newline + "  "
        if all(type(item) is str for item in value):  # decision logs: one join
            out.append("[" + inner + ("," + inner).join(map(_escaped, value)) + newline + "]")
            return
        separator = "[" + inner
        for item in value:
            out.append(separator)
            _indented(item, inner, out)
            separator = "," + inner
        out.append(newline + "]")
    elif value is None or isinstance(value, bool):
        out.append("null" if value is None else "true" if value else "false")
    elif type(value) is float and math.isfinite(value):
        out.append(float.__repr__(value))  # what json writes for a finite float
    elif type(value) is int:
        out.append(int.__repr__(value))
    else:  # anything else exactly as json writes it (or refuses it)
        out.append(json.dumps(value))


def _one_line_nodes(entry: object) -> object:
    """A class entry with its node list marked for one line (a copy; the wire is kept)."""
    if isinstance(entry, dict) and isinstance(entry.get("nodes"), list) and entry["nodes"]:
        return {**entry, "nodes": _OneLine(entry["nodes"])}
    return entry


_escaped: Callable[[str], str] = json.encoder.encode_basestring_ascii


CONTENT_HASH_KEY = "INFERENCE_THRESHOLDS_CONTENT_HASH"
"""ConfigMap key (so, through ``envFrom``, a variable) holding the document's contentHash.

``envFrom`` variables keep their container-start values while the mounted file follows
ConfigMap updates: a pod whose variable differs from the mounted document's hash holds
threshold variables from an older ConfigMap."""

PUBLISHED_ENV_KEY = "INFERENCE_THRESHOLDS_PUBLISHED_ENV"
"""ConfigMap key listing the threshold keys it publishes as ``NAME=value,...``.

A threshold variable equal to its entry here came from the ConfigMap through ``envFrom``
(of the ConfigMap named by CONTENT_HASH_KEY); any other value was set by the user
(``env:`` wins over ``envFrom`` in Kubernetes), even after the ConfigMap has changed."""

# Bound on what is parsed from PUBLISHED_ENV_KEY (an env variable, editable by anyone who
# can edit the ConfigMap): a handful of short pairs is all the operator writes.
_PUBLISHED_ENV_MAX_CHARS = 4096


def env_value(value: float) -> str:
    """Integral values without '.0' (legacy code does int(...)), others to 3 decimals."""
    return decimal_text(value, 3)


def env_data(effective: Thresholds, prefix: str = DEFAULT_ENV_PREFIX) -> dict[str, str]:
    """The env-style keys of a ConfigMap: each set effective threshold, as the operator
    writes it."""
    out = {}
    for field, variable in env_variables(prefix).items():
        value = getattr(effective, field)
        if value is not None:
            out[variable] = env_value(float(value))
    return out


def published_env(env: Mapping[str, str]) -> str:
    """PUBLISHED_ENV_KEY's value for these threshold keys: ``A=1,B=2.5`` (sorted)."""
    return ",".join(f"{name}={value}" for name, value in sorted(env.items()))


def parse_published_env(text: str) -> dict[str, str]:
    """PUBLISHED_ENV_KEY's value back as name -> value; malformed pairs are skipped."""
    pairs = (p.partition("=") for p in text[:_PUBLISHED_ENV_MAX_CHARS].split(","))
    return {name.strip(): value.strip() for name, eq, value in pairs if eq and name.strip()}


class ClassEntry(WireModel):
    """Thresholds for one hardware class (nodes with identical relevant hardware)."""

    # Read by pods whose client may be older than the operator: a field added later is
    # skipped, not a reason to refuse the whole document.
    model_config = ConfigDict(extra="ignore")

    hardware_summary: str = Field(description="Short human summary, e.g. '1x NVIDIA A100 80GB'.")
    node_count: int = Field(ge=0)
    feasible: bool
    reason: str | None = None
    complexity: Complexity | None = None
    expected: Expected = Field(default_factory=Expected)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    decisions: list[str] = Field(
        default_factory=list, description="Decision log, one readable line per step."
    )
    nodes: list[str] = Field(
        default_factory=list,
        description="The selected nodes of this class, by name (sorted): a pod finds its "
        "class through NODE_NAME.",
    )


class ThresholdsDocument(WireModel):
    model_config = ConfigDict(extra="ignore")  # as ClassEntry: newer operators may add fields

    api_version: Literal["thresholds.inference.dev/v1alpha1"] = "thresholds.inference.dev/v1alpha1"
    kind: Literal["ThresholdsDocument"] = "ThresholdsDocument"
    owner: str = Field(description="Name of the InferenceThresholds object.")
    namespace: str
    generation: int = Field(ge=0, description="metadata.generation the document was computed for.")
    content_hash: str = Field(description="sha256 of the document without this field.")
    effective_class: str | None = Field(
        None, description="Class whose thresholds are the effective ones (the slowest)."
    )
    effective: Thresholds = Field(default_factory=Thresholds)
    classes: dict[str, ClassEntry] = Field(default_factory=dict)
    nodes: dict[str, str] | None = Field(
        None,
        description="Node name -> class name, where operators before each class listed "
        "its nodes kept them (read, no longer written: the names of a class's nodes "
        "once, not the class name once per node, halve a large fleet's document).",
    )

    def class_of(self, node: str) -> str | None:
        """The class listing ``node`` (or, in an older document, mapping it), else None."""
        for name, entry in self.classes.items():
            if node in entry.nodes:
                return name
        return (self.nodes or {}).get(node)

    def node_classes(self) -> dict[str, str]:
        """Node name -> class name, from whichever form the document has."""
        listed = {node: name for name, entry in self.classes.items() for node in entry.nodes}
        return listed or dict(self.nodes or {})

    @property
    def node_total(self) -> int:
        """How many nodes the document places in a class."""
        listed = sum(len(entry.nodes) for entry in self.classes.values())
        return listed or len(self.nodes or {})
