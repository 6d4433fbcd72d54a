"""Load the thresholds a pod should hold itself to: mounted document + env, node-aware.

Resolution order, per threshold:

1. a variable ``<PREFIX><KEY>`` (e.g. ``BITNET_MIN_TOKENS_PER_SECOND``) the user set
   (see below);
2. the thresholds of the node's hardware class (the class whose ``nodes`` list ``NODE_NAME``);
3. the document's effective thresholds (those of the slowest class).

The generated ConfigMap is typically used twice: mounted as a volume *and* via
``envFrom``. The env keys it injects hold the effective (slowest-class) values, and keep
their container-start values while the mounted file follows updates, so treating them
as overrides would erase the per-node class, and after a CR update bring back old
numbers. The ConfigMap therefore also publishes its content hash and the list of its
threshold keys with their values (``CONTENT_HASH_KEY``, ``PUBLISHED_ENV_KEY``): a variable
equal to its published entry came from the ConfigMap and never overrides the document
(with a note asking for a restart when that ConfigMap is older than the mounted one);
any other value, or one under ``env:`` (which wins over ``envFrom``), is the user's.
Without those keys (a ConfigMap from an older operator, single keys wired with
``configMapKeyRef``) a value equal to the current ConfigMap's own key or effective value
is taken as the ConfigMap's.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError

from ..api.base import WireModel
from ..api.errors import field_errors
from ..api.result import Thresholds
from ..api.thresholds_document import (
    CONTENT_HASH_KEY,
    DEFAULT_ENV_PREFIX,
    DOCUMENT_KEY,
    ENV_KEYS,
    PUBLISHED_ENV_KEY,
    ThresholdsDocument,
    env_value,
    env_variables,
    parse_published_env,
)
from .errors import ThresholdsError, ThresholdsNotFoundError
from .numbers import parse_threshold
from .validation import Observed, ValidationReport, validate_thresholds

DEFAULT_PATH = "/etc/inference-thresholds"
"""Where the example Deployments mount the generated ConfigMap."""

PATH_ENV = "INFERENCE_THRESHOLDS_PATH"
"""Env variable that overrides DEFAULT_PATH (a directory, or the thresholds.json file)."""

PREFIX_ENV = "INFERENCE_THRESHOLDS_ENV_PREFIX"
"""Env variable naming the prefix of the threshold variables (default ``BITNET_``)."""

HASH_ENV = CONTENT_HASH_KEY
"""The ConfigMap's content hash as an ``envFrom`` variable (see the module docstring)."""

NODE_ENV = "NODE_NAME"
"""Env variable holding the pod's node (set it from the downward API: spec.nodeName)."""

# Relative tolerance for recognising an envFrom-injected value: the operator writes
# rounded decimals into the env keys, the document keeps full floats.
_SAME_VALUE_REL_TOL = 1e-3

Selection = Literal["node-class", "effective", "env-only"]
SourceKind = Literal["class", "effective", "env"]


class ThresholdSource(WireModel):
    kind: SourceKind
    detail: str = Field(description="Readable origin, e.g. 'class cpu-avx2-8c (node worker-1)'.")


class LoadedThresholds(WireModel):
    """Thresholds for this pod, with where each number came from."""

    thresholds: Thresholds
    sources: dict[str, ThresholdSource] = Field(
        default_factory=dict, description="Thresholds field -> origin of its value."
    )
    selection: Selection
    selection_reason: str
    node_name: str | None = None
    class_name: str | None = None
    feasible: bool = True
    infeasible_reason: str | None = None
    document_path: str | None = None
    document: ThresholdsDocument | None = None
    env_prefix: str = DEFAULT_ENV_PREFIX
    notes: list[str] = Field(default_factory=list)

    # Shadows pydantic's deprecated classmethod BaseModel.validate on purpose: the
    # documented pod API is ``load_thresholds().validate(observed)``.
    def validate(  # type: ignore[override]
        self, observed: Observed | Mapping[str, float | str | None]
    ) -> ValidationReport:
        """pass/fail per threshold; an infeasible class fails the whole report."""
        return self.validate_observed(observed)

    def validate_observed(
        self, observed: Observed | Mapping[str, float | str | None]
    ) -> ValidationReport:
        """Same as ``validate`` (a name that does not shadow pydantic's)."""
        problems = []
        if not self.feasible:
            problems.append(
                f"the model is infeasible on class {self.class_name}: {self.infeasible_reason}"
            )
        return validate_thresholds(
            self.thresholds,
            observed,
            sources={k: v.detail for k, v in self.sources.items()},
            problems=problems,
        )


def resolve_document_file(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The thresholds.json path: argument, then $INFERENCE_THRESHOLDS_PATH, then default."""
    chosen = Path(path) if path is not None else Path(env.get(PATH_ENV) or DEFAULT_PATH)
    return chosen if chosen.is_file() or chosen.suffix == ".json" else chosen / DOCUMENT_KEY


def read_thresholds_document(file: Path) -> ThresholdsDocument:
    """Parse thresholds.json, naming the file and the field on any error."""
    try:
        raw = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ThresholdsError(f"cannot read {file}: {exc.strerror}", source=str(file)) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ThresholdsError(
            f"{file} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "it should be the ConfigMap's thresholds.json as written by the operator",
            source=str(file),
        ) from None
    try:
        return ThresholdsDocument.model_validate(data)
    except ValidationError as exc:
        loc, msg = next(field_errors(exc))
        loc = loc or "(document)"
        raise ThresholdsError(
            f"{file}: field {loc}: {msg} ({exc.error_count()} problem(s)); "
            "regenerate it with the operator or fix that field",
            source=f"{file}:{loc}",
        ) from None


def _select(
    doc: ThresholdsDocument, node_name: str | None
) -> tuple[Selection, str, str | None, Thresholds, bool, str | None]:
    effective_note = (
        f"effective thresholds (class {doc.effective_class}, the slowest)"
        if doc.effective_class
        else "effective thresholds"
    )
    if not node_name:
        reason = f"{NODE_ENV} not set; using the {effective_note}"
        return "effective", reason, doc.effective_class, doc.effective, True, None
    class_name = doc.class_of(node_name)
    if class_name is None:
        reason = (
            f"node {node_name} is in none of the document's classes ({doc.node_total} "
            f"node(s)); using the {effective_note}"
        )
        return "effective", reason, doc.effective_class, doc.effective, True, None
    entry = doc.classes.get(class_name)
    if entry is None:
        reason = (
            f"node {node_name} maps to class {class_name}, which the document does not "
            f"define; using the {effective_note}"
        )
        return "effective", reason, doc.effective_class, doc.effective, True, None
    reason = f"node {node_name} is in class {class_name} ({entry.hardware_summary})"
    return "node-class", reason, class_name, entry.thresholds, entry.feasible, entry.reason


def _same(a: float, b: float | None) -> bool:
    return b is not None and math.isclose(a, b, rel_tol=_SAME_VALUE_REL_TOL, abs_tol=1e-9)


def _configmap_key_value(directory: Path, var: str) -> float | None:
    """The value of an env-style key file next to thresholds.json, if it is there."""
    file = directory / var
    try:
        return float(file.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _from_configmap(
    var: str,
    raw: str,
    value: float,
    field: str,
    *,
    published: Mapping[str, str] | None,
    doc: ThresholdsDocument,
    directory: Path,
) -> bool:
    """Whether the variable ``var=raw`` is a copy of the ConfigMap's key, not the user's."""
    if published is not None:  # the ConfigMap listed what it published (this operator)
        return published.get(var) == raw
    return _same(value, _configmap_key_value(directory, var)) or _same(
        value, getattr(doc.effective, field)
    )


def load_thresholds(
    path: str | os.PathLike[str] | None = None,
    node_name: str | None = None,
    env: Mapping[str, str] = os.environ,
    *,
    env_prefix: str | None = None,
    apply_env: bool = True,
) -> LoadedThresholds:
    """Load this pod's thresholds from the mounted ConfigMap and the environment.

    ``path``: the mounted ConfigMap directory (or its thresholds.json); default
    ``$INFERENCE_THRESHOLDS_PATH`` or ``/etc/inference-thresholds``.
    ``node_name``: default ``$NODE_NAME``. ``env_prefix``: default
    ``$INFERENCE_THRESHOLDS_ENV_PREFIX`` or ``BITNET_``.
    Raises ThresholdsNotFoundError when there is neither a document nor any variable,
    ThresholdsError for an unreadable document or a bad variable.
    """
    prefix = env_prefix if env_prefix is not None else env.get(PREFIX_ENV) or DEFAULT_ENV_PREFIX
    node = node_name if node_name is not None else (env.get(NODE_ENV) or None)
    file = resolve_document_file(path, env)
    doc = read_thresholds_document(file) if file.is_file() else None

    values: dict[str, float | None] = {}
    sources: dict[str, ThresholdSource] = {}
    notes: list[str] = []
    feasible, infeasible_reason = True, None
    if doc is not None:
        selection, reason, class_name, chosen, feasible, infeasible_reason = _select(doc, node)
        kind: SourceKind = "class" if selection == "node-class" else "effective"
        detail = (
            f"class {class_name} (node {node})"
            if kind == "class"
            else f"effective (class {class_name})"
            if class_name
            else "effective"
        )
        for field in ENV_KEYS:
            value = getattr(chosen, field)
            values[field] = value
            if value is not None:
                sources[field] = ThresholdSource(kind=kind, detail=detail)
    else:
        selection, class_name = "env-only", None
        reason = f"no {file}; thresholds come from {prefix}* variables only"

    found_env = False
    if apply_env:
        env_hash = env.get(HASH_ENV, "").strip()
        published = (
            parse_published_env(env[PUBLISHED_ENV_KEY]) if PUBLISHED_ENV_KEY in env else None
        )
        stale: list[str] | None = None  # set when envFrom copies predate the document
        for field, var in env_variables(prefix).items():
            raw = env.get(var, "").strip()
            if not raw:
                continue  # unset and empty both mean "no override" (Kubernetes sets "" often)
            found_env = True
            fix = f"set {var} to a positive number or remove it"
            value = parse_threshold(raw, source=var, fix=fix)
            if doc is None or not _from_configmap(
                var, raw, value, field, published=published, doc=doc, directory=file.parent
            ):
                values[field] = value
                sources[field] = ThresholdSource(kind="env", detail=f"env {var}")
            elif env_hash and env_hash != doc.content_hash:
                stale = stale or []
                now = getattr(doc.effective, field)
                if not _same(value, now):
                    shown = "unset" if now is None else env_value(float(now))
                    stale.append(f"{var}={raw}, now {shown}")
            elif selection == "node-class" and not _same(value, values.get(field)):
                notes.append(
                    f"{var}={raw} matches the ConfigMap (envFrom); the node's class "
                    f"value {values.get(field)} is used instead"
                )
        if stale is not None and doc is not None:
            changed = f": {'; '.join(stale)}" if stale else ""
            notes.append(
                f"env from an older ConfigMap ({HASH_ENV} {env_hash[:12]}, the mounted "
                f"{file.name} {doc.content_hash[:12]}){changed}; its {prefix}* variables are "
                "ignored for the mounted document; restart the pod to refresh its environment"
            )

    if doc is None and not found_env:
        raise ThresholdsNotFoundError(
            f"no thresholds: {file} does not exist and no {prefix}* variable is set. "
            f"Mount the InferenceThresholds ConfigMap at {file.parent} (or set {PATH_ENV} "
            f"to where it is mounted), or add it with envFrom",
            source=str(file),
        )
    if not feasible:
        notes.append(f"class {class_name} is infeasible: {infeasible_reason}")
    return LoadedThresholds(
        thresholds=Thresholds(**values),
        sources=sources,
        selection=selection,
        selection_reason=reason,
        node_name=node,
        class_name=class_name,
        feasible=feasible,
        infeasible_reason=infeasible_reason,
        document_path=str(file) if doc is not None else None,
        document=doc,
        env_prefix=prefix,
        notes=notes,
    )


def validate(
    observed: Observed | Mapping[str, float | str | None],
    thresholds: LoadedThresholds | Thresholds | None = None,
) -> ValidationReport:
    """Validate observed metrics; loads thresholds with the defaults when none are given."""
    if thresholds is None:
        thresholds = load_thresholds()
    if isinstance(thresholds, LoadedThresholds):
        return thresholds.validate_observed(observed)
    return validate_thresholds(thresholds, observed)
