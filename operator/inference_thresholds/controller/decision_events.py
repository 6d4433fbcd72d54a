"""Decision Events for what changed since the CR's previous status (none on a no-op restart).

A pass posts one Normal Event for what it decided, named for its most significant part
(``MERGED``), and a Warning per problem. Each Event is an apiserver write (and an etcd
object kept for an hour): three per new CR were a third of a first start's apiserver CPU.
"""

from __future__ import annotations

from ..api import Thresholds
from ..api.crd import (
    CONFIGMAP_SYNCED,
    NODES_MATCHED,
    READY,
    SPEC_WARNINGS,
    ConditionStatus,
    InferenceThresholdsStatus,
)
from ..text import readable_number
from .configmap import SyncOutcome
from .events import DecisionEvent
from .plan import Plan

_THRESHOLD_FIELDS = tuple(Thresholds.model_fields)
_DIGITS = 3  # significant digits of numbers in Events
# The Normal parts of a pass that make one Event: its reason is the first present here;
# its message takes them in ``_PART_ORDER`` (the class list last: it is what gets cut at
# the Event size limit).
MERGED = (
    "ThresholdsComputed",
    "ThresholdsChanged",
    "ClassesFound",
    "OverrideApplied",
    "ConfigMapWritten",
)
_PART_ORDER = (
    "ThresholdsComputed",
    "ThresholdsChanged",
    "OverrideApplied",
    "ConfigMapWritten",
    "ClassesFound",
)
PART_SEPARATOR = " | "


def decision_events(
    plan: Plan, previous: InferenceThresholdsStatus, sync: SyncOutcome | None
) -> list[DecisionEvent]:
    """Events for what changed since the CR's previous status, adaptation's last."""
    if plan.invalid is not None:
        return _invalid_spec(plan, previous)
    events = [
        *_overrides(plan, previous),
        *_warnings(plan, previous),
        *_classes(plan, previous),
        *_thresholds(plan, previous),
        *_configmap(sync, previous),
    ]
    return merged(events) + plan.adaptation.events


def merged(events: list[DecisionEvent]) -> list[DecisionEvent]:
    """The pass's Normal decisions as one Event, where the first of them was; the rest
    (Warnings) as they are."""
    parts = {e.reason: e.message for e in events if e.type == "Normal" and e.reason in MERGED}
    if len(parts) < 2:
        return events
    reason = next(r for r in MERGED if r in parts)
    one = DecisionEvent(
        "Normal", reason, PART_SEPARATOR.join(parts[r] for r in _PART_ORDER if r in parts)
    )
    out: list[DecisionEvent] = []
    for e in events:
        if e.type == "Normal" and e.reason in MERGED:
            if one not in out:
                out.append(one)
        else:
            out.append(e)
    return out


def _invalid_spec(plan: Plan, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    assert plan.invalid is not None
    old_ready = previous.condition(READY)
    if (
        old_ready is None
        or old_ready.reason != "InvalidSpec"
        or plan.invalid not in old_ready.message
    ):
        return [DecisionEvent("Warning", "InvalidSpec", plan.invalid)]
    return []  # reported once, not on every pass


def _overrides(plan: Plan, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    """Which explicit thresholds apply and where each comes from, on a spec change."""
    if plan.spec is None or previous.observed_generation == plan.generation:
        return []
    top = plan.spec.overrides.wire()
    ctx = plan.spec.context.overrides.wire()
    merged = plan.spec.merged_overrides().wire()
    if not merged:
        return []
    where = ", ".join(
        f"{k}={v:g} ({'spec.overrides' if k in top else 'spec.context.overrides'})"
        for k, v in sorted(merged.items())
    )
    shadowed = sorted(k for k in ctx if k in top and ctx[k] != top[k])
    note = (
        f"; spec.overrides wins over context.overrides for {', '.join(shadowed)}"
        if shadowed
        else ""
    )
    return [DecisionEvent("Normal", "OverrideApplied", f"explicit thresholds: {where}{note}")]


def _warnings(plan: Plan, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    """Contradicting values in the spec: once per change of what they are."""
    old = previous.condition(SPEC_WARNINGS)
    text = plan.warnings_text
    if text and (old is None or old.message != text):
        return [DecisionEvent("Warning", "SpecWarning", text)]
    return []


def _classes(plan: Plan, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    """Classes found, no node selected, classes the model does not fit: when that changed."""
    events = []
    old_classes = {(c.name, c.node_count) for c in previous.classes}
    new_classes = {(c.name, len(c.nodes)) for c in plan.listed_classes}
    if plan.classes and new_classes != old_classes:
        parts = [
            f"{c.name} x{len(c.nodes)} [{c.record.hardware.source}] {c.summary}"
            for c in plan.classes
        ]
        events.append(
            DecisionEvent(
                "Normal",
                "ClassesFound",
                f"{plan.nodes_matched} node(s) in {len(plan.classes)} hardware class(es): "
                + "; ".join(parts),
            )
        )

    old_nodes = previous.condition(NODES_MATCHED)
    if plan.nodes_matched == 0 and (old_nodes is None or old_nodes.status != ConditionStatus.FALSE):
        events.append(
            DecisionEvent(
                "Warning",
                "NoMatchingNodes",
                "no node matches spec.nodeSelector; the ConfigMap has no thresholds until one does",
            )
        )

    old_bad = {c.name for c in previous.classes if not c.feasible}
    new_bad = [c for c in plan.classes if not c.feasible]
    if new_bad and {c.name for c in new_bad} != old_bad:
        events.append(
            DecisionEvent(
                "Warning",
                "ModelDoesNotFit",
                "; ".join(f"{c.name} ({len(c.nodes)} node(s)): {c.reason()}" for c in new_bad),
            )
        )
    return events


def _thresholds(plan: Plan, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    """The effective thresholds: first computed, or what moved (and the class if it did)."""
    old_eff, new_eff = previous.effective, plan.effective
    if new_eff == old_eff:
        return []
    cls = f" (class {plan.effective_class})" if plan.effective_class else ""
    if not old_eff.wire():
        text = ", ".join(f"{k}={_number(float(v))}" for k, v in new_eff.wire().items())  # type: ignore[arg-type]
        return [DecisionEvent("Normal", "ThresholdsComputed", f"effective{cls}: {text or 'none'}")]
    moved = (
        f"; effective class {previous.effective_class} → {plan.effective_class}"
        if previous.effective_class != plan.effective_class
        else ""
    )
    return [DecisionEvent("Normal", "ThresholdsChanged", f"{_diff(old_eff, new_eff)}{cls}{moved}")]


def _configmap(
    sync: SyncOutcome | None, previous: InferenceThresholdsStatus
) -> list[DecisionEvent]:
    if sync is None:
        return []
    events = []
    old_synced = previous.condition(CONFIGMAP_SYNCED)
    if sync.sharing and (old_synced is None or sync.sharing not in old_synced.message):
        events.append(DecisionEvent("Warning", "ConfigMapNameShared", sync.sharing))
    return events + _configmap_write(sync, previous)


def _configmap_write(sync: SyncOutcome, previous: InferenceThresholdsStatus) -> list[DecisionEvent]:
    if sync.action == "repaired":
        return [DecisionEvent("Warning", "ConfigMapRepaired", sync.message)]
    if sync.action in ("created", "updated"):
        return [DecisionEvent("Normal", "ConfigMapWritten", sync.message)]
    old_ready = previous.condition(READY)
    if not sync.ok and (old_ready is None or old_ready.message != sync.message):
        return [DecisionEvent("Warning", sync.reason, sync.message)]  # once, not per retry
    return []


def _number(value: float | None) -> str:
    return readable_number(value, _DIGITS)


def _diff(old: Thresholds, new: Thresholds) -> str:
    parts = []
    for f in _THRESHOLD_FIELDS:
        a, b = getattr(old, f), getattr(new, f)
        if a != b:
            alias = Thresholds.model_fields[f].alias or f
            parts.append(f"{alias} {_number(a)} → {_number(b)}")
    return "; ".join(parts)
