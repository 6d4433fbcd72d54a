"""The CR's status from a plan: conditions, classes, effective thresholds, adaptation.

Derived by comparing with the CR's previous status, so an unchanged world gives an equal
status (no write) and a condition keeps its transition time while its status holds.
"""

from __future__ import annotations

from ..api import Expected, Thresholds
from ..api.adaptation import ADAPTED
from ..api.crd import (
    CONFIGMAP_SYNCED,
    FEASIBLE,
    NODES_MATCHED,
    READY,
    SPEC_WARNINGS,
    ClassStatus,
    Condition,
    ConditionStatus,
    ConfigMapRef,
    InferenceThresholdsStatus,
)
from .configmap import SyncOutcome
from .plan import Plan
from .plan_adaptation import PlanAdaptation

CONDITION_MESSAGE_LIMIT = 32768


def next_condition(
    previous: InferenceThresholdsStatus,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    now: str,
) -> Condition:
    """A condition as it stands now; its transition time moves only when its status does."""
    old = previous.condition(type_)
    same = old is not None and old.status == status
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:CONDITION_MESSAGE_LIMIT],
        last_transition_time=old.last_transition_time if same and old else now,
        observed_generation=generation,
    )


def new_status(
    plan: Plan,
    previous: InferenceThresholdsStatus,
    sync: SyncOutcome | None,
    now: str,
) -> InferenceThresholdsStatus:
    """The status to write; equal to ``previous`` when nothing changed (so no write)."""
    if plan.invalid is not None:
        status = _invalid_spec_status(plan, previous, now)
    else:
        status = _reconciled_status(plan, previous, sync, now)
    return _with_adaptation(status, previous, plan.adaptation, plan.generation, now)


def _invalid_spec_status(
    plan: Plan, previous: InferenceThresholdsStatus, now: str
) -> InferenceThresholdsStatus:
    # Keep what the ConfigMap still holds; only Ready says the new spec is rejected.
    ready = next_condition(
        previous,
        READY,
        ConditionStatus.FALSE,
        "InvalidSpec",
        f"{plan.invalid}. The ConfigMap keeps the last valid thresholds; fix the spec.",
        plan.generation,
        now,
    )
    others = [c for c in previous.conditions if c.type != READY]
    return previous.model_copy(
        update={"observed_generation": plan.generation, "conditions": [ready, *others]}
    )


def _reconciled_status(
    plan: Plan, previous: InferenceThresholdsStatus, sync: SyncOutcome | None, now: str
) -> InferenceThresholdsStatus:
    conditions = _conditions(plan, previous, sync, now)
    content_hash = plan.document.content_hash if plan.document else None
    old_ref = previous.config_map_ref
    # A ConfigMap that cannot be written (conflict) leaves old_ref unset: compare the
    # thresholds too, or every retry would stamp a new time and rewrite status.
    if old_ref is None:
        changed = previous.effective != plan.effective
    else:
        changed = old_ref.content_hash != content_hash
    return InferenceThresholdsStatus(
        observed_generation=plan.generation,
        conditions=conditions,
        nodes_matched=plan.nodes_matched,
        classes=_class_statuses(plan),
        effective_class=plan.effective_class,
        effective=plan.effective,
        config_map_ref=ConfigMapRef(name=plan.config_map_name or "", content_hash=content_hash)
        if sync is not None and sync.ok
        else old_ref,
        last_computed_time=now
        if changed or previous.last_computed_time is None
        else previous.last_computed_time,
    )


def _conditions(
    plan: Plan, previous: InferenceThresholdsStatus, sync: SyncOutcome | None, now: str
) -> list[Condition]:
    """Ready, Feasible, NodesMatched, ConfigMapSynced, in the order people read them."""

    def cond(type_: str, status: ConditionStatus, reason: str, message: str) -> Condition:
        return next_condition(previous, type_, status, reason, message, plan.generation, now)

    n = plan.nodes_matched
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
        listed = len(plan.listed_classes)
        more = (
            f"; status.classes lists {listed} (the effective and infeasible first), the "
            "ConfigMap all"
            if listed < len(plan.classes)
            else ""
        )
        nodes_c = cond(
            NODES_MATCHED,
            ConditionStatus.TRUE,
            "NodesSelected",
            f"{n} node(s) in {len(plan.classes)} hardware class(es){more}",
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
    if sync is not None and sync.ok and sync.shared_with:
        cm_c = cond(
            CONFIGMAP_SYNCED,
            ConditionStatus.TRUE,
            "NameShared",
            f"ConfigMap {plan.config_map_name} is up to date; {sync.sharing}",
        )
    elif sync is None or sync.ok:
        cm_c = cond(
            CONFIGMAP_SYNCED,
            ConditionStatus.TRUE,
            "Synced",
            f"ConfigMap {plan.config_map_name} is up to date",
        )
    else:
        cm_c = cond(CONFIGMAP_SYNCED, ConditionStatus.FALSE, sync.reason, sync.message)

    if cm_c.status != ConditionStatus.TRUE:
        ready = cond(READY, ConditionStatus.FALSE, cm_c.reason, cm_c.message)
    elif n == 0:
        ready = cond(READY, ConditionStatus.FALSE, "NoMatchingNodes", nodes_c.message)
    elif not any(c.feasible for c in plan.classes):
        ready = cond(READY, ConditionStatus.FALSE, "ModelDoesNotFit", feas_c.message)
    else:
        extra = f"; {len(infeasible)} class(es) infeasible, see Feasible" if infeasible else ""
        extra += (
            f"; {len(plan.warnings)} spec warning(s), see SpecWarnings" if plan.warnings else ""
        )
        ready = cond(
            READY,
            ConditionStatus.TRUE,
            "Reconciled",
            f"thresholds for {n} node(s) written to ConfigMap {plan.config_map_name}{extra}",
        )
    if not plan.warnings:
        return [ready, feas_c, nodes_c, cm_c]
    warn_c = cond(SPEC_WARNINGS, ConditionStatus.TRUE, "ContradictoryValues", plan.warnings_text)
    return [ready, feas_c, nodes_c, cm_c, warn_c]


def _class_statuses(plan: Plan) -> list[ClassStatus]:
    # At most STATUS_CLASSES_MAX: NodesMatched says how many there are.
    return [
        ClassStatus(
            name=c.name,
            node_count=len(c.nodes),
            hardware_summary=c.summary,
            hardware_source=c.record.hardware.source,
            feasible=c.feasible,
            reason=c.reason(),
            thresholds=c.result.thresholds if c.result and c.feasible else Thresholds(),
            expected=c.result.expected if c.result else Expected(),
        )
        for c in plan.listed_classes
    ]


def _with_adaptation(
    status: InferenceThresholdsStatus,
    previous: InferenceThresholdsStatus,
    adaptation: PlanAdaptation,
    generation: int,
    now: str,
) -> InferenceThresholdsStatus:
    """``status`` plus ``adaptation`` and the ``Adapted`` condition (or neither if disabled)."""
    if adaptation.keep_status:
        return status
    others = [c for c in status.conditions if c.type != ADAPTED]
    if not adaptation.enabled:  # disabling is explicit: learned state is dropped
        return status.model_copy(update={"adaptation": None, "conditions": others})
    st = adaptation.state
    if st is None:
        cond_status, reason, message = (
            ConditionStatus.UNKNOWN,
            "Pending",
            "waiting for a feasible hardware class to adapt",
        )
    else:
        cond_status = ConditionStatus.TRUE if st.healthy else ConditionStatus.FALSE
        reason = st.reason
        message = st.message or "waiting for the first Prometheus query"
        if st.last_query_time is None:
            cond_status = ConditionStatus.UNKNOWN
    cond = next_condition(previous, ADAPTED, cond_status, reason, message, generation, now)
    return status.model_copy(update={"adaptation": st, "conditions": [*others, cond]})
