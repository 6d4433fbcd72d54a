"""Adaptation inside the reconcile: adapted thresholds into the plan, state into status.

Single writer: the adaptation daemon (``adaptation_daemon.py``) only computes the next
state and hands it to the reconciler through ``Runtime.adaptation``; the reconciler
applies it to the plan (effective thresholds and the effective class, so the ConfigMap
carries them), writes ``status.adaptation`` and the ``Adapted`` condition in the same
status write. Free of kopf, so it is unit-testable with the reconcile core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from ..adaptation import state as adapt
from ..api.adaptation import ADAPTED, AdaptationStatus
from ..api.crd import Condition, ConditionStatus, InferenceThresholdsStatus
from ..api.result import Decision
from .reconcile import DecisionEvent, Plan, _document, _event

CrKey = tuple[str, str]


@dataclass
class PlanAdaptation:
    """What adaptation did to one plan: the state to keep and Events to post."""

    enabled: bool
    state: AdaptationStatus | None
    events: list[DecisionEvent] = field(default_factory=list)
    keep_status: bool = False  # invalid spec: status.adaptation stays as it was


def overridden_fields(plan: Plan) -> frozenset[str]:
    if plan.spec is None:
        return frozenset()
    return frozenset(plan.spec.merged_overrides().model_dump(exclude_none=True))


def adapt_plan(plan: Plan, state: AdaptationStatus | None) -> PlanAdaptation:
    """Rebase ``state`` on the plan's engine numbers and substitute adapted thresholds.

    The plan arrives with the engine's (unadapted) thresholds; they are the basis. Only
    the effective class is adapted (observations are per deployment, the effective
    class is the one its thresholds are judged by); other classes keep computed values.
    """
    if plan.invalid is not None or plan.spec is None:
        return PlanAdaptation(enabled=False, state=state, keep_status=True)
    spec = plan.spec.adaptation
    if not spec.enabled:
        return PlanAdaptation(enabled=False, state=None)
    best = next((c for c in plan.classes if c.name == plan.effective_class), None)
    if best is None or best.result is None:
        return PlanAdaptation(enabled=True, state=state)  # nothing to adapt yet; keep state
    basis = adapt.basis_from(best.result.expected, best.result.thresholds)
    new_state, notes = adapt.rebase(state, spec, basis)
    events = [_event("Normal", "AdaptationRebased", note) for note in notes]
    overridden = overridden_fields(plan)
    adapted = adapt.apply(best.result.thresholds, new_state, overridden)
    if adapted != best.result.thresholds:
        decisions = list(best.result.decisions)
        for sig in adapt.SIGNALS:
            before = getattr(best.result.thresholds, sig.threshold_field)
            after = getattr(adapted, sig.threshold_field)
            if after == before:
                continue
            learned = getattr(new_state, sig.name)
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
        best.result = best.result.model_copy(update={"thresholds": adapted, "decisions": decisions})
        plan.effective = adapted
        plan.document = _document(plan)
    return PlanAdaptation(enabled=True, state=new_state, events=events)


def with_status(
    status: InferenceThresholdsStatus,
    previous: InferenceThresholdsStatus,
    result: PlanAdaptation,
    generation: int,
    now: str,
) -> InferenceThresholdsStatus:
    """``status`` plus ``adaptation`` and the ``Adapted`` condition (or neither if disabled)."""
    if result.keep_status:
        return status
    others = [c for c in status.conditions if c.type != ADAPTED]
    if not result.enabled:  # disabling is explicit: learned state is dropped
        return status.model_copy(update={"adaptation": None, "conditions": others})
    st = result.state
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
    old = previous.condition(ADAPTED)
    same = old is not None and old.status == cond_status
    cond = Condition(
        type=ADAPTED,
        status=cond_status,
        reason=reason,
        message=message[:32768],
        last_transition_time=old.last_transition_time if same and old else now,
        observed_generation=generation,
    )
    return status.model_copy(update={"adaptation": st, "conditions": [*others, cond]})


def state_from_status(raw: Mapping[str, object] | None) -> AdaptationStatus | None:
    """status.adaptation as stored (after a restart); junk is dropped, not fatal."""
    if not raw:
        return None
    try:
        return AdaptationStatus.model_validate(dict(raw))
    except ValidationError:
        return None


def interval_events(
    before: AdaptationStatus, after: AdaptationStatus, moves: list[adapt.Move]
) -> list[DecisionEvent]:
    """One Event per move, and one per change of health (not one per failing interval)."""
    events = [_event("Normal", "ThresholdAdapted", m.message()) for m in moves]
    if not after.healthy and (before.healthy or before.reason != after.reason):
        events.append(_event("Warning", "AdaptationFailed", f"{after.reason}: {after.message}"))
    elif after.healthy and not before.healthy:
        events.append(_event("Normal", "AdaptationResumed", f"{after.reason}: {after.message}"))
    return events


class AdaptationCollector(Collector):
    """Observed levels, confidence and observed/expected ratios per CR (no stale series)."""

    def __init__(self, states: Callable[[], Mapping[CrKey, AdaptationStatus]]) -> None:
        self._states = states
        self._lock = threading.Lock()

    def _snapshot(self) -> list[tuple[CrKey, AdaptationStatus]]:
        for _ in range(3):  # the asyncio thread may resize the dict meanwhile
            try:
                return sorted(self._states().items())
            except RuntimeError:
                continue
        return []

    def collect(self) -> Iterator[Metric]:
        p = "inference_thresholds_"
        observed = {
            "decode": GaugeMetricFamily(
                p + "observed_decode_tokens_per_second",
                "Observed decode tokens/s per sequence (decayed mean).",
                labels=["namespace", "name"],
            ),
            "ttft": GaugeMetricFamily(
                p + "observed_time_to_first_token_seconds",
                "Observed time to first token, seconds (decayed mean of the quantile).",
                labels=["namespace", "name"],
            ),
        }
        ratio = GaugeMetricFamily(
            p + "observed_to_expected_ratio",
            "Observed level / physical expectation (decode: >1 is faster; ttft: >1 is slower).",
            labels=["namespace", "name", "signal"],
        )
        confidence = GaugeMetricFamily(
            p + "adaptation_confidence",
            "Confidence in the observed level, 0..1 (1 - 2^(-history/halfLife)).",
            labels=["namespace", "name", "signal"],
        )
        samples = GaugeMetricFamily(
            p + "adaptation_samples",
            "Samples since the last reset.",
            labels=["namespace", "name", "signal"],
        )
        healthy = GaugeMetricFamily(
            p + "adaptation_healthy",
            "1 when the last Prometheus query succeeded, else 0.",
            labels=["namespace", "name"],
        )
        for (ns, name), st in self._snapshot():
            healthy.add_metric([ns, name], 1.0 if st.healthy else 0.0)
            for sig in adapt.SIGNALS:
                s = getattr(st, sig.name)
                if not s.query:
                    continue
                confidence.add_metric([ns, name, sig.name], s.confidence)
                samples.add_metric([ns, name, sig.name], float(s.samples))
                if s.mean is None:
                    continue
                scale = 1e-3 if sig.name == "ttft" else 1.0
                observed[sig.name].add_metric([ns, name], s.mean * scale)
                expected = getattr(st.basis, sig.expected_field)
                if expected:
                    ratio.add_metric([ns, name, sig.name], s.mean / expected)
        yield from observed.values()
        yield from (ratio, confidence, samples, healthy)
