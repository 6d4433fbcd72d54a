"""Adaptation as a step of planning: learned thresholds replace computed ones in the plan.

Single writer: the adaptation loop (``adaptation_loop.py``) only computes the next learned
state and hands it over in ``CrState.adaptation``; planning rebases that state on the
engine's numbers and substitutes the adapted thresholds for the effective class before
the document is built, so the ConfigMap carries them; ``status.py`` writes the state and
the ``Adapted`` condition in the same status write. Free of kopf and I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..adaptation import state as adapt
from ..api import ThresholdResult, Thresholds
from ..api.adaptation import AdaptationStatus
from ..api.crd import InferenceThresholdsSpec
from ..api.result import Decision
from .events import DecisionEvent


@dataclass
class PlanAdaptation:
    """What adaptation did to one plan: the state to keep and Events to post."""

    enabled: bool
    state: AdaptationStatus | None
    events: list[DecisionEvent] = field(default_factory=list)
    keep_status: bool = False  # invalid spec: status.adaptation stays as it was

    @classmethod
    def kept(cls, state: AdaptationStatus | None) -> PlanAdaptation:
        """For a plan that touches nothing but status: the learned state stays as it is."""
        return cls(enabled=False, state=state, keep_status=True)


def overridden_fields(spec: InferenceThresholdsSpec) -> frozenset[str]:
    """Threshold fields set explicitly; adaptation never moves those."""
    return frozenset(spec.merged_overrides().model_dump(exclude_none=True))


def adapt_effective(
    spec: InferenceThresholdsSpec, computed: ThresholdResult | None, state: AdaptationStatus | None
) -> tuple[ThresholdResult | None, PlanAdaptation]:
    """The effective class's result with adapted thresholds, and what adaptation did.

    ``computed`` carries the engine's (unadapted) thresholds; they are the basis. Only the
    effective class is adapted: observations are per deployment, and the effective class
    is the one its thresholds are judged by; other classes keep computed values.
    """
    if not spec.adaptation.enabled:
        return computed, PlanAdaptation(enabled=False, state=None)
    if computed is None:
        return None, PlanAdaptation(enabled=True, state=state)  # nothing to adapt yet; keep state
    basis = adapt.basis_from(computed.expected, computed.thresholds)
    new_state, notes = adapt.rebase(state, spec.adaptation, basis)
    events = [DecisionEvent("Normal", "AdaptationRebased", note) for note in notes]
    adapted = adapt.apply(computed.thresholds, new_state, overridden_fields(spec))
    result = computed
    if adapted != computed.thresholds:
        decisions = computed.decisions + _adaptation_decisions(computed, adapted, new_state)
        result = computed.model_copy(update={"thresholds": adapted, "decisions": decisions})
    return result, PlanAdaptation(enabled=True, state=new_state, events=events)


def _adaptation_decisions(
    computed: ThresholdResult, adapted: Thresholds, state: AdaptationStatus
) -> list[Decision]:
    decisions = []
    for sig in adapt.SIGNALS:
        before = getattr(computed.thresholds, sig.threshold_field)
        after = getattr(adapted, sig.threshold_field)
        if after == before:
            continue
        learned = getattr(state, sig.name)
        decisions.append(
            Decision(
                step=f"adaptation.{sig.alias}",
                value=round(after, 6),
                unit=sig.unit,
                source="measured",
                detail=f"tightened from computed {before:.4g} toward observed "
                f"{learned.mean:.4g} (confidence {learned.confidence:.2f}); "
                "see status.adaptation",
            )
        )
    return decisions


def interval_events(
    before: AdaptationStatus, after: AdaptationStatus, moves: list[adapt.Move]
) -> list[DecisionEvent]:
    """One Event per move, and one per change of health (not one per failing interval)."""
    events = [DecisionEvent("Normal", "ThresholdAdapted", m.message()) for m in moves]
    if not after.healthy and (before.healthy or before.reason != after.reason):
        events.append(
            DecisionEvent("Warning", "AdaptationFailed", f"{after.reason}: {after.message}")
        )
    elif after.healthy and not before.healthy:
        events.append(
            DecisionEvent("Normal", "AdaptationResumed", f"{after.reason}: {after.message}")
        )
    return events
