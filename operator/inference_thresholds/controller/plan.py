"""Planning, free of I/O: (spec, nodes, engine, learned state) -> what the CR should produce.

The plan holds the selected nodes grouped into hardware classes, the engine's result per
class, the effective (slowest feasible) class with adaptation applied, and the thresholds
document for the ConfigMap, built once. ``reconcile_pass.py`` writes what it describes;
``status.py`` and ``decision_events.py`` compare it with the CR's previous status.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..api import (
    DeploymentContext,
    Expected,
    HardwareProfile,
    ModelSpec,
    ThresholdResult,
    Thresholds,
)
from ..api.adaptation import AdaptationStatus
from ..api.crd import InferenceThresholdsSpec
from ..api.errors import validation_message
from ..api.thresholds_document import ClassEntry, ThresholdsDocument, wire_text
from ..bounds import clip
from .classes import summary
from .node_index import NodeRecord, Selection, select
from .plan_adaptation import PlanAdaptation, adapt_classes

ComputeFn = Callable[[HardwareProfile, ModelSpec, DeploymentContext, Any], ThresholdResult]
# An invalid spec's message lands in the Ready condition (and is compared with it to post
# InvalidSpec once): bounded, whatever text the spec carried.
INVALID_MESSAGE_LIMIT = 2000
# The apiserver refuses objects over 1 MiB (etcd's request limit): the document gets ~900 KiB,
# the rest is env keys and metadata. Past it the other classes' decision logs are dropped.
DOCUMENT_BUDGET = 900 * 1024
# status.classes lists at most this many (the effective and infeasible ones first); a
# status near etcd's limit fails every write. The ConfigMap holds every class.
STATUS_CLASSES_MAX = 50
ResolveFn = Callable[[ModelSpec], Any]


@dataclass
class ClassResult:
    name: str
    key: str
    nodes: list[str]
    record: NodeRecord
    result: ThresholdResult | None = None
    error: str | None = None

    @property
    def feasible(self) -> bool:
        return self.result is not None and self.result.feasible

    @property
    def summary(self) -> str:
        return summary(self.record.hardware.profile)

    def reason(self) -> str | None:
        if self.error:
            return self.error
        return None if self.result is None or self.result.feasible else self.result.reason


@dataclass
class Plan:
    """What the CR should look like now; ``invalid`` set means: touch nothing but status."""

    name: str
    namespace: str
    generation: int
    invalid: str | None = None
    spec: InferenceThresholdsSpec | None = None
    classes: list[ClassResult] = field(default_factory=list)
    effective_class: str | None = None
    effective: Thresholds = field(default_factory=Thresholds)
    selection: Selection = field(default_factory=lambda: Selection(None))
    adaptation: PlanAdaptation = field(default_factory=lambda: PlanAdaptation.kept(None))
    document: ThresholdsDocument | None = None
    # The document as the ConfigMap holds it, rendered once (``document_text``).
    document_text: str = ""
    config_map_name: str | None = None
    warnings: list[str] = field(default_factory=list)  # contradictions in a valid spec
    # Why no ConfigMap can hold the document (too many classes/nodes); None when one can.
    oversized: str | None = None

    @property
    def listed_classes(self) -> list[ClassResult]:
        """The classes status lists: all, or STATUS_CLASSES_MAX of them (effective first,
        then infeasible, then by node count), by name."""
        if len(self.classes) <= STATUS_CLASSES_MAX:
            return self.classes

        def rank(c: ClassResult) -> tuple[bool, bool, int, str]:
            return (c.name != self.effective_class, c.feasible, -len(c.nodes), c.name)

        kept = sorted(self.classes, key=rank)[:STATUS_CLASSES_MAX]
        return sorted(kept, key=lambda c: c.name)

    @property
    def warnings_text(self) -> str:
        return "; ".join(self.warnings)

    @property
    def nodes_matched(self) -> int:
        return self.selection.count


def make_plan(
    *,
    name: str,
    namespace: str,
    generation: int,
    raw_spec: Mapping[str, Any],
    nodes: Mapping[str, NodeRecord],
    compute: ComputeFn,
    policy: Any = None,
    resolve: ResolveFn | None = None,
    adaptation: AdaptationStatus | None = None,
) -> Plan:
    """Validate, select, compute per class, pick the effective class, adapt, document.

    ``adaptation`` is the learned state (``None`` before any); the plan carries what
    adaptation made of it (``plan.adaptation``).
    """
    plan = Plan(name=name, namespace=namespace, generation=generation)
    plan.adaptation = PlanAdaptation.kept(adaptation)
    spec = _valid_spec(plan, raw_spec, resolve)
    if spec is None:
        return plan
    plan.spec = spec
    plan.warnings = spec.warnings()
    groups = _select(plan, spec, nodes)
    _compute_classes(plan, spec, groups, compute, policy)
    if plan.invalid is not None:
        return plan

    best = _pick_effective(plan.classes)
    plan.adaptation = adapt_classes(spec, plan.classes, best, adaptation)
    if best is not None and best.result is not None:
        plan.effective_class = best.name
        plan.effective = best.result.thresholds
    plan.config_map_name = spec.config_map_name(name)
    plan.document, plan.document_text = _fitted_document(plan)
    return plan


def _valid_spec(
    plan: Plan, raw_spec: Mapping[str, Any], resolve: ResolveFn | None
) -> InferenceThresholdsSpec | None:
    """The spec, or None with ``plan.invalid`` naming the field and the fix."""
    try:
        spec = InferenceThresholdsSpec.model_validate(dict(raw_spec))
    except ValidationError as exc:
        plan.invalid = clip(validation_message(exc, "spec"), INVALID_MESSAGE_LIMIT)
        return None
    if resolve is not None:
        try:
            resolve(spec.model)
        except ValueError as exc:  # unknown preset and friends: the user's input
            text = str(exc)
            text = f"spec.{text}" if text.startswith("model.") else f"spec.model: {text}"
            plan.invalid = clip(text, INVALID_MESSAGE_LIMIT)
            return None
    return spec


def _select(
    plan: Plan, spec: InferenceThresholdsSpec, nodes: Mapping[str, NodeRecord]
) -> dict[str, list[NodeRecord]]:
    """Selected nodes grouped by hardware class key; records the selection in the plan."""
    groups: dict[str, list[NodeRecord]] = {}
    selected = select(nodes, spec.node_selector)
    for rec in selected:
        groups.setdefault(rec.class_key, []).append(rec)
    plan.selection = Selection(spec.node_selector, len(selected))
    return groups


def _compute_classes(
    plan: Plan,
    spec: InferenceThresholdsSpec,
    groups: Mapping[str, list[NodeRecord]],
    compute: ComputeFn,
    policy: Any,
) -> None:
    context = spec.effective_context()
    errors: list[str] = []
    for key, recs in groups.items():
        first = recs[0]
        cls = ClassResult(first.class_name, key, [r.name for r in recs], first)
        try:
            cls.result = compute(first.hardware.profile, spec.model, context, policy)
        except ValueError as exc:
            cls.error = f"cannot compute for this hardware: {exc}"
            errors.append(str(exc))
        plan.classes.append(cls)
    plan.classes.sort(key=lambda c: c.name)
    # The same input error on every class is the spec's fault, not the hardware's.
    if plan.classes and len(errors) == len(plan.classes) and len(set(errors)) == 1:
        plan.invalid = clip(errors[0], INVALID_MESSAGE_LIMIT)


def _pick_effective(classes: list[ClassResult]) -> ClassResult | None:
    """The slowest feasible class: lowest expected decode tokens/s (then lowest threshold)."""

    def speed(c: ClassResult) -> tuple[float, float, str]:
        assert c.result is not None
        exp = c.result.expected.decode_tokens_per_second
        thr = c.result.thresholds.min_tokens_per_second
        return (exp if exp is not None else math.inf, thr if thr is not None else math.inf, c.name)

    feasible = [c for c in classes if c.feasible]
    return min(feasible, key=speed) if feasible else None


def document_hash(doc: ThresholdsDocument) -> str:
    """sha256 of the document's canonical JSON without the contentHash field."""
    wire = doc.wire()
    wire.pop("contentHash", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _decision_lines(result: ThresholdResult | None, record: NodeRecord) -> list[str]:
    lines = [f"hardware.source: {record.hardware.source} (node {record.name})"]
    lines += [f"hardware.{f.field}: {f.source} ({f.via})" for f in record.hardware.fields]
    lines += [f"hardware.note: {note}" for note in record.hardware.notes]
    for d in result.decisions if result else []:
        value = "" if d.value is None else f" = {d.value}{' ' + d.unit if d.unit else ''}"
        detail = f" — {d.detail}" if d.detail else ""
        lines.append(f"{d.step}{value} [{d.source}]{detail}")
    return lines


def _fitted_document(plan: Plan) -> tuple[ThresholdsDocument, str]:
    """The document and its text, without other classes' decision logs if a ConfigMap
    cannot hold them; ``plan.oversized`` says why when even that does not fit."""
    doc, text = _hashed(_document(plan))
    if len(text.encode()) <= DOCUMENT_BUDGET:
        return doc, text
    omitted = ["decisions omitted: the full document would exceed what a ConfigMap holds"]
    classes = {
        name: entry
        if name == plan.effective_class
        else entry.model_copy(update={"decisions": omitted})
        for name, entry in doc.classes.items()
    }
    compact, text = _hashed(doc.model_copy(update={"classes": classes, "content_hash": ""}))
    compact_size = len(text.encode())
    if compact_size > DOCUMENT_BUDGET:
        plan.oversized = (
            f"thresholds for {len(plan.classes)} hardware classes and {plan.nodes_matched} nodes "
            f"take {compact_size} bytes, more than a ConfigMap holds ({DOCUMENT_BUDGET}); the "
            "ConfigMap keeps its previous content. Select fewer nodes (spec.nodeSelector)."
        )
    return compact, text


def _document(plan: Plan) -> ThresholdsDocument:
    entries = {
        c.name: ClassEntry(
            hardware_summary=c.summary,
            node_count=len(c.nodes),
            feasible=c.feasible,
            reason=c.reason(),
            complexity=c.result.complexity if c.result else None,
            expected=c.result.expected if c.result else Expected(),
            thresholds=c.result.thresholds if c.result and c.result.feasible else Thresholds(),
            decisions=_decision_lines(c.result, c.record),
            nodes=sorted(c.nodes),
        )
        for c in plan.classes
    }
    doc = ThresholdsDocument(
        owner=plan.name,
        namespace=plan.namespace,
        generation=plan.generation,
        content_hash="",
        effective_class=plan.effective_class,
        effective=plan.effective,
        classes=entries,
    )
    return doc


def _hashed(doc: ThresholdsDocument) -> tuple[ThresholdsDocument, str]:
    """The document with its contentHash (``document_hash``), and its text: both from one
    wire form of it (a thousand node names make each form cost)."""
    wire = doc.wire()
    wire.pop("contentHash", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    wire["contentHash"] = digest
    return doc.model_copy(update={"content_hash": digest}), wire_text(wire)
