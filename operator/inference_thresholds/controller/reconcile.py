"""The reconcile core, free of I/O: (spec, nodes, engine) -> plan -> status and Events.

The kopf daemon (handlers.py) feeds it the CR and the node index, writes the ConfigMap
the plan describes, then asks for the status and the decision Events. Keeping this
pure makes every decision unit-testable and keeps restarts write-free: status and
Events are derived by comparing with what the CR already says.
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
from ..api.crd import (
    CONFIGMAP_SYNCED,
    FEASIBLE,
    NODES_MATCHED,
    READY,
    ClassStatus,
    Condition,
    ConditionStatus,
    ConfigMapRef,
    InferenceThresholdsSpec,
    InferenceThresholdsStatus,
)
from ..api.thresholds_document import ClassEntry, ThresholdsDocument
from .classes import summary
from .node_index import NodeRecord, Selection
from .selector import matches

ComputeFn = Callable[[HardwareProfile, ModelSpec, DeploymentContext, Any], ThresholdResult]
ResolveFn = Callable[[ModelSpec], Any]

EVENT_MESSAGE_LIMIT = 1024
_THRESHOLD_FIELDS = tuple(Thresholds.model_fields)


def document_hash(doc: ThresholdsDocument) -> str:
    """sha256 of the document's canonical JSON without the contentHash field."""
    wire = doc.wire()
    wire.pop("contentHash", None)
    canonical = json.dumps(wire, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validation_message(exc: ValidationError, root: str = "spec") -> str:
    """One line per error, each naming the field: 'spec.model.parametersBillion: ...'."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        path = f"{root}.{loc}" if loc else root
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{path}: {msg}")
    return "; ".join(lines)


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
    document: ThresholdsDocument | None = None
    config_map_name: str | None = None

    @property
    def nodes_matched(self) -> int:
        return len(self.selection.nodes)


def _decision_lines(result: ThresholdResult | None, record: NodeRecord) -> list[str]:
    lines = [f"hardware.source: {record.hardware.source} (node {record.name})"]
    lines += [f"hardware.note: {note}" for note in record.hardware.notes]
    for d in result.decisions if result else []:
        value = "" if d.value is None else f" = {d.value}{' ' + d.unit if d.unit else ''}"
        detail = f" — {d.detail}" if d.detail else ""
        lines.append(f"{d.step}{value} [{d.source}]{detail}")
    return lines


def _pick_effective(classes: list[ClassResult]) -> ClassResult | None:
    """The slowest feasible class: lowest expected decode tokens/s (then lowest threshold)."""

    def speed(c: ClassResult) -> tuple[float, float, str]:
        assert c.result is not None
        exp = c.result.expected.decode_tokens_per_second
        thr = c.result.thresholds.min_tokens_per_second
        return (exp if exp is not None else math.inf, thr if thr is not None else math.inf, c.name)

    feasible = [c for c in classes if c.feasible]
    return min(feasible, key=speed) if feasible else None


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
) -> Plan:
    plan = Plan(name=name, namespace=namespace, generation=generation)
    try:
        spec = InferenceThresholdsSpec.model_validate(dict(raw_spec))
    except ValidationError as exc:
        plan.invalid = validation_message(exc)
        return plan
    plan.spec = spec
    if resolve is not None:
        try:
            resolve(spec.model)
        except ValueError as exc:  # unknown preset and friends: the user's input
            text = str(exc)
            plan.invalid = f"spec.{text}" if text.startswith("model.") else f"spec.model: {text}"
            return plan
    context = spec.effective_context()

    groups: dict[str, list[NodeRecord]] = {}
    selected: dict[str, str] = {}
    for node_name in sorted(nodes):
        rec = nodes[node_name]
        if matches(spec.node_selector, rec.labels):
            groups.setdefault(rec.class_key, []).append(rec)
            selected[node_name] = rec.class_key
    plan.selection = Selection(spec.node_selector, selected)

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
        plan.invalid = errors[0]
        return plan

    best = _pick_effective(plan.classes)
    if best is not None and best.result is not None:
        plan.effective_class = best.name
        plan.effective = best.result.thresholds
    plan.config_map_name = spec.config_map_name(name)
    plan.document = _document(plan)
    return plan


def _document(plan: Plan) -> ThresholdsDocument:
    entries = {
        c.name: ClassEntry(
            hardware_summary=_summary(c.record),
            node_count=len(c.nodes),
            feasible=c.feasible,
            reason=c.reason(),
            complexity=c.result.complexity if c.result else None,
            expected=c.result.expected if c.result else Expected(),
            thresholds=c.result.thresholds if c.result and c.result.feasible else Thresholds(),
            decisions=_decision_lines(c.result, c.record),
        )
        for c in plan.classes
    }
    nodes = {n: c.name for c in plan.classes for n in c.nodes}
    doc = ThresholdsDocument(
        owner=plan.name,
        namespace=plan.namespace,
        generation=plan.generation,
        content_hash="",
        effective_class=plan.effective_class,
        effective=plan.effective,
        classes=entries,
        nodes=dict(sorted(nodes.items())),
    )
    return doc.model_copy(update={"content_hash": document_hash(doc)})


def _summary(record: NodeRecord) -> str:
    return summary(record.hardware.profile)


# --- status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncOutcome:
    """What writing the ConfigMap did: created, updated, repaired, unchanged, conflict, failed."""

    action: str
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.action in ("created", "updated", "repaired", "unchanged")


def _sync_reason(sync: SyncOutcome) -> str:
    return "ConfigMapConflict" if sync.action == "conflict" else "ConfigMapWriteFailed"


def _condition(
    previous: InferenceThresholdsStatus,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    old = previous.condition(type_)
    same = old is not None and old.status == status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32768],
        last_transition_time=old.last_transition_time if same and old else now,
        observed_generation=generation,
    )


def _fmt(value: float | None) -> str:
    """Readable in an Event: 2.05, 48.3, 5400, never 5.4e+04."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _thresholds_text(t: Thresholds) -> str:
    wire = t.wire()
    return ", ".join(f"{k}={_fmt(float(v))}" for k, v in wire.items()) or "none"  # type: ignore[arg-type]


def new_status(
    plan: Plan,
    previous: InferenceThresholdsStatus,
    sync: SyncOutcome | None,
    now: str,
) -> InferenceThresholdsStatus:
    """The status to write; equal to ``previous`` when nothing changed (so no write)."""
    gen = plan.generation

    def cond(type_: str, status: ConditionStatus, reason: str, message: str) -> Condition:
        return _condition(previous, type_, status, reason, message, gen, now)

    if plan.invalid is not None:
        # Keep what the ConfigMap still holds; only Ready says the new spec is rejected.
        ready = cond(
            READY,
            ConditionStatus.FALSE,
            "InvalidSpec",
            f"{plan.invalid}. The ConfigMap keeps the last valid thresholds; fix the spec.",
        )
        others = [c for c in previous.conditions if c.type != READY]
        return previous.model_copy(
            update={"observed_generation": gen, "conditions": [ready, *others]}
        )

    n = plan.nodes_matched
    feasible = [c for c in plan.classes if c.feasible]
    infeasible = [c for c in plan.classes if not c.feasible]
    if n == 0:
        nodes_c = cond(
            NODES_MATCHED,
            ConditionStatus.FALSE,
            "NoMatchingNodes",
            "no node matches spec.nodeSelector; label nodes or change the selector",
        )
        feas_c = cond(FEASIBLE, ConditionStatus.UNKNOWN, "NoMatchingNodes", "no nodes to check")
    else:
        nodes_c = cond(
            NODES_MATCHED,
            ConditionStatus.TRUE,
            "NodesSelected",
            f"{n} node(s) in {len(plan.classes)} hardware class(es)",
        )
        if infeasible:
            why = "; ".join(f"{c.name} ({len(c.nodes)} node(s)): {c.reason()}" for c in infeasible)
            feas_c = cond(
                FEASIBLE,
                ConditionStatus.FALSE,
                "ModelDoesNotFit",
                f"{len(infeasible)} of {len(plan.classes)} class(es) cannot serve the model: "
                f"{why}. Use a smaller model or precision, or select other nodes.",
            )
        else:
            feas_c = cond(
                FEASIBLE, ConditionStatus.TRUE, "ModelFits", "the model fits every selected class"
            )
    if sync is None or sync.ok:
        cm_c = cond(
            CONFIGMAP_SYNCED,
            ConditionStatus.TRUE,
            "Synced",
            f"ConfigMap {plan.config_map_name} is up to date",
        )
    else:
        cm_c = cond(CONFIGMAP_SYNCED, ConditionStatus.FALSE, _sync_reason(sync), sync.message)

    if cm_c.status != ConditionStatus.TRUE:
        ready = cond(READY, ConditionStatus.FALSE, cm_c.reason, cm_c.message)
    elif n == 0:
        ready = cond(READY, ConditionStatus.FALSE, "NoMatchingNodes", nodes_c.message)
    elif not feasible:
        ready = cond(READY, ConditionStatus.FALSE, "ModelDoesNotFit", feas_c.message)
    else:
        extra = f"; {len(infeasible)} class(es) infeasible, see Feasible" if infeasible else ""
        ready = cond(
            READY,
            ConditionStatus.TRUE,
            "Reconciled",
            f"thresholds for {n} node(s) written to ConfigMap {plan.config_map_name}{extra}",
        )

    doc = plan.document
    content_hash = doc.content_hash if doc else None
    old_ref = previous.config_map_ref
    # A ConfigMap that cannot be written (conflict) leaves old_ref unset: compare the
    # thresholds too, or every retry would stamp a new time and rewrite status.
    if old_ref is None:
        changed = previous.effective != plan.effective
    else:
        changed = old_ref.content_hash != content_hash
    return InferenceThresholdsStatus(
        observed_generation=gen,
        conditions=[ready, feas_c, nodes_c, cm_c],
        nodes_matched=n,
        classes=[
            ClassStatus(
                name=c.name,
                node_count=len(c.nodes),
                hardware_summary=_summary(c.record),
                hardware_source=c.record.hardware.source,
                feasible=c.feasible,
                reason=c.reason(),
                thresholds=c.result.thresholds if c.result and c.feasible else Thresholds(),
                expected=c.result.expected if c.result else Expected(),
            )
            for c in plan.classes
        ],
        effective_class=plan.effective_class,
        effective=plan.effective,
        config_map_ref=ConfigMapRef(name=plan.config_map_name or "", content_hash=content_hash)
        if sync is not None and sync.ok
        else old_ref,
        last_computed_time=now
        if changed or previous.last_computed_time is None
        else previous.last_computed_time,
    )


# --- decision Events --------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


def _event(type_: str, reason: str, message: str) -> DecisionEvent:
    if len(message) > EVENT_MESSAGE_LIMIT:
        message = message[: EVENT_MESSAGE_LIMIT - 3] + "..."
    return DecisionEvent(type_, reason, message)


def _diff(old: Thresholds, new: Thresholds) -> str:
    parts = []
    for f in _THRESHOLD_FIELDS:
        a, b = getattr(old, f), getattr(new, f)
        if a != b:
            alias = Thresholds.model_fields[f].alias or f
            parts.append(f"{alias} {_fmt(a)} → {_fmt(b)}")
    return "; ".join(parts)


def decision_events(
    plan: Plan, previous: InferenceThresholdsStatus, sync: SyncOutcome | None
) -> list[DecisionEvent]:
    """Events for what changed since the CR's previous status (none on a no-op restart)."""
    events: list[DecisionEvent] = []
    old_ready = previous.condition(READY)
    if plan.invalid is not None:
        if (
            old_ready is None
            or old_ready.reason != "InvalidSpec"
            or plan.invalid not in (old_ready.message)
        ):
            events.append(_event("Warning", "InvalidSpec", plan.invalid))
        return events

    spec_changed = previous.observed_generation != plan.generation
    if plan.spec is not None and spec_changed:
        top = plan.spec.overrides.wire()
        ctx = plan.spec.context.overrides.wire()
        merged = plan.spec.merged_overrides().wire()
        if merged:
            where = ", ".join(
                f"{k}={v:g} ({'spec.overrides' if k in top else 'spec.context.overrides'})"
                for k, v in sorted(merged.items())
            )
            shadowed = sorted(k for k in ctx if k in top and ctx[k] != top[k])
            note = (
                f"; spec.overrides wins over context.overrides for {', '.join(shadowed)}"
                if (shadowed)
                else ""
            )
            events.append(
                _event("Normal", "OverrideApplied", f"explicit thresholds: {where}{note}")
            )

    old_classes = {(c.name, c.node_count) for c in previous.classes}
    new_classes = {(c.name, len(c.nodes)) for c in plan.classes}
    if plan.classes and new_classes != old_classes:
        parts = [
            f"{c.name} x{len(c.nodes)} [{c.record.hardware.source}] {_summary(c.record)}"
            for c in plan.classes
        ]
        events.append(
            _event(
                "Normal",
                "ClassesFound",
                f"{plan.nodes_matched} node(s) in {len(plan.classes)} hardware class(es): "
                + "; ".join(parts),
            )
        )

    old_nodes = previous.condition(NODES_MATCHED)
    if plan.nodes_matched == 0 and (old_nodes is None or old_nodes.status != ConditionStatus.FALSE):
        events.append(
            _event(
                "Warning",
                "NoMatchingNodes",
                "no node matches spec.nodeSelector; the ConfigMap has no thresholds until one does",
            )
        )

    old_bad = {c.name for c in previous.classes if not c.feasible}
    new_bad = [c for c in plan.classes if not c.feasible]
    if new_bad and {c.name for c in new_bad} != old_bad:
        events.append(
            _event(
                "Warning",
                "ModelDoesNotFit",
                "; ".join(f"{c.name} ({len(c.nodes)} node(s)): {c.reason()}" for c in new_bad),
            )
        )

    old_eff, new_eff = previous.effective, plan.effective
    if new_eff != old_eff:
        cls = f" (class {plan.effective_class})" if plan.effective_class else ""
        if not old_eff.wire():
            events.append(
                _event(
                    "Normal", "ThresholdsComputed", f"effective{cls}: {_thresholds_text(new_eff)}"
                )
            )
        else:
            moved = (
                f"; effective class {previous.effective_class} → {plan.effective_class}"
                if previous.effective_class != plan.effective_class
                else ""
            )
            events.append(
                _event("Normal", "ThresholdsChanged", f"{_diff(old_eff, new_eff)}{cls}{moved}")
            )

    if sync is not None:
        if sync.action == "repaired":
            events.append(_event("Warning", "ConfigMapRepaired", sync.message))
        elif sync.action in ("created", "updated"):
            events.append(_event("Normal", "ConfigMapWritten", sync.message))
        elif not sync.ok:
            reason = _sync_reason(sync)
            if old_ready is None or old_ready.reason != reason:
                events.append(_event("Warning", reason, sync.message))
    return events
