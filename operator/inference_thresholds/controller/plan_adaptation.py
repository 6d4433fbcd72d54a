"""Adaptation as a step of planning: learned thresholds replace computed ones in the plan.

Single writer: the adaptation loop (``adaptation_loop.py``) only computes the next learned
state and hands it over in ``CrState.adaptation``; planning rebases that state on the
engine's numbers of each adapted class and, in mode Apply, substitutes the learned
thresholds before the document is built, so the ConfigMap carries them (mode Recommend
leaves the document as computed); ``status.py`` writes the state and the ``Adapted``
condition in the same status write. Free of kopf and I/O.

Which classes adapt: with ``nodeLabel`` every feasible class (effective first, at most
``MAX_CLASSES``), each from its own nodes' series; without, the effective class only,
from the deployment's series (observations are per deployment then).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..adaptation import state as adapt
from ..api import ThresholdResult, Thresholds
from ..api.adaptation import AdaptationMode, AdaptationStatus, ClassAdaptation
from ..api.crd import InferenceThresholdsSpec
from ..api.result import Decision
from .events import DecisionEvent


class AdaptableClass(Protocol):
    """What planning knows of a hardware class (``plan.ClassResult``)."""

    name: str
    nodes: list[str]
    result: ThresholdResult | None

    @property
    def feasible(self) -> bool: ...


@dataclass
class PlanAdaptation:
    """What adaptation did to one plan: the state to keep and Events to post."""

    enabled: bool
    state: AdaptationStatus | None
    events: list[DecisionEvent] = field(default_factory=list)
    keep_status: bool = False  # invalid spec: status.adaptation stays as it was
    # The nodes of each adapted class: the adaptation loop's per-class node matchers.
    class_nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def kept(cls, state: AdaptationStatus | None) -> PlanAdaptation:
        """For a plan that touches nothing but status: the learned state stays as it is."""
        return cls(enabled=False, state=state, keep_status=True)


def overridden_fields(spec: InferenceThresholdsSpec) -> frozenset[str]:
    """Threshold fields set explicitly; adaptation never moves those."""
    return frozenset(spec.merged_overrides().model_dump(exclude_none=True))


def adapted_classes(
    spec: InferenceThresholdsSpec,
    classes: Sequence[AdaptableClass],
    effective: AdaptableClass | None,
) -> list[AdaptableClass]:
    if effective is None:
        return []
    if spec.adaptation.node_label is None:
        return [effective]
    others = sorted((c for c in classes if c.feasible and c is not effective), key=lambda c: c.name)
    return [effective, *others][: adapt.MAX_CLASSES]


def adapt_classes(
    spec: InferenceThresholdsSpec,
    classes: Sequence[AdaptableClass],
    effective: AdaptableClass | None,
    state: AdaptationStatus | None,
) -> PlanAdaptation:
    """Rebase the learned state on the adapted classes; in mode Apply, put the learned
    thresholds into their results (``result`` is replaced, the computed one is the basis)."""
    if not spec.adaptation.enabled:
        return PlanAdaptation(enabled=False, state=None)
    chosen = adapted_classes(spec, classes, effective)
    if not chosen:
        return PlanAdaptation(enabled=True, state=state)  # nothing to adapt yet; keep state
    bases = []
    for c in chosen:
        assert c.result is not None
        bases.append((c.name, adapt.basis_from(c.result.expected, c.result.thresholds)))
    new_state, notes = adapt.rebase(state, spec.adaptation, bases)
    events = [
        DecisionEvent(
            "Normal", "AdaptationModeChanged" if note.startswith("mode ") else "AdaptationRebased",
            note,
        )
        for note in notes
    ]  # fmt: skip
    if spec.adaptation.mode is AdaptationMode.APPLY:
        overridden = overridden_fields(spec)
        for c in chosen:
            assert c.result is not None
            entry = new_state.entry(c.name)
            adapted = adapt.apply(c.result.thresholds, entry, overridden)
            if entry is not None and adapted != c.result.thresholds:
                decisions = c.result.decisions + _adaptation_decisions(c.result, adapted, entry)
                c.result = c.result.model_copy(
                    update={"thresholds": adapted, "decisions": decisions}
                )
    return PlanAdaptation(
        enabled=True,
        state=new_state,
        events=events,
        class_nodes={c.name: tuple(c.nodes) for c in chosen},
    )


def _adaptation_decisions(
    computed: ThresholdResult, adapted: Thresholds, entry: ClassAdaptation
) -> list[Decision]:
    decisions = []
    for sig in adapt.SIGNALS:
        before = getattr(computed.thresholds, sig.threshold_field)
        after = getattr(adapted, sig.threshold_field)
        if after == before:
            continue
        learned = getattr(entry, sig.name)
        observed = "?" if learned.observed is None else f"{learned.observed:.4g}"
        decisions.append(
            Decision(
                step=f"adaptation.{sig.alias}",
                value=round(after, 6),
                unit=sig.unit,
                source="measured",
                detail=f"tightened from computed {before:.4g} toward observed {observed} "
                f"(confidence {learned.confidence:.2f}); see status.adaptation",
            )
        )
    return decisions


def interval_events(
    before: AdaptationStatus, interval: adapt.Interval, mode: AdaptationMode
) -> list[DecisionEvent]:
    """One Event per move (or recommendation), per history load, per change of health."""
    after = interval.state
    reason = "ThresholdAdapted" if mode is AdaptationMode.APPLY else "ThresholdRecommended"
    events = [DecisionEvent("Normal", "AdaptationSeeded", text) for text in interval.seeded]
    events += [DecisionEvent("Normal", reason, m.message()) for m in interval.moves]
    if not after.healthy and (before.healthy or before.reason != after.reason):
        events.append(
            DecisionEvent("Warning", "AdaptationFailed", f"{after.reason}: {after.message}")
        )
    elif after.healthy and not before.healthy:
        events.append(
            DecisionEvent("Normal", "AdaptationResumed", f"{after.reason}: {after.message}")
        )
    return events
