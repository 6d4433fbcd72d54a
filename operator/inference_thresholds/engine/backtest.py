"""Backtest: run the engine over measured cases and count false alarms and slack.

CASES is a list of ``{id, hardware, model, context, measured {decodeTokensPerSecond,
timeToFirstTokenMs}, healthy}`` (the calibration file's format).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..api import DeploymentContext, HardwareProfile, ModelSpec, ThresholdResult, Thresholds
from .compute import compute
from .devices import cpu_arch
from .inputs import InputError, parse
from .policy import Policy

Thresholder = Callable[[HardwareProfile, ModelSpec, DeploymentContext], ThresholdResult]


_CONSUMER_GPU = ("geforce", "titan", "radeon rx", "arc a")


def device_kind(hw: HardwareProfile, result: ThresholdResult) -> str:
    """The device families TTFT quality is judged by: x86/Arm CPUs, Apple, data-center and
    consumer GPUs (workstation and data-center parts together)."""
    device = result.device
    if device is None or device.kind == "cpu":
        return {"apple": "Apple", "arm": "Arm CPU"}.get(cpu_arch(hw), "x86 CPU")
    product = (device.product or "").lower()
    if "apple" in product:
        return "Apple"
    if any(word in product for word in _CONSUMER_GPU) or re.search(r"\brtx [2-5]0\d0", product):
        return "consumer GPU"
    return "datacenter GPU"


@dataclass
class CaseOutcome:
    id: str
    kind: str
    healthy: bool
    feasible: bool
    expected_tps: float | None
    expected_ttft: float | None
    thresholds: Thresholds
    measured_tps: float | None
    measured_ttft: float | None
    flagged: list[str]

    @property
    def verdict(self) -> str:
        if not self.feasible:
            return "infeasible"
        if self.healthy:
            return "false-alarm" if self.flagged else "ok"
        return "caught" if self.flagged else "missed"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "healthy": self.healthy,
            "feasible": self.feasible,
            "expected": {
                "decodeTokensPerSecond": self.expected_tps,
                "timeToFirstTokenMs": self.expected_ttft,
            },
            "measured": {
                "decodeTokensPerSecond": self.measured_tps,
                "timeToFirstTokenMs": self.measured_ttft,
            },
            "thresholds": self.thresholds.wire(),
            "verdict": self.verdict,
            "flagged": self.flagged,
        }


def _case_inputs(
    case: Mapping[str, Any], where: str
) -> tuple[HardwareProfile, ModelSpec, DeploymentContext]:
    if not isinstance(case, Mapping):
        raise InputError(f"{where}: each case must be a mapping with hardware, model, context")
    return (
        parse(HardwareProfile, case.get("hardware"), f"{where}.hardware"),
        parse(ModelSpec, case.get("model"), f"{where}.model"),
        parse(DeploymentContext, case.get("context"), f"{where}.context"),
    )


def run_case(case: Mapping[str, Any], index: int, thresholder: Thresholder) -> CaseOutcome:
    where = f"cases[{index}]" + (f" ({case.get('id')})" if isinstance(case, Mapping) else "")
    hw, model, ctx = _case_inputs(case, where)
    measured = case.get("measured") or {}
    result = thresholder(hw, model, ctx)
    t = result.thresholds
    tps = measured.get("decodeTokensPerSecond")
    ttft = measured.get("timeToFirstTokenMs")
    flagged = []
    if tps is not None and t.min_tokens_per_second is not None and tps < t.min_tokens_per_second:
        flagged.append("minTokensPerSecond")
    if (
        ttft is not None
        and t.max_time_to_first_token_ms is not None
        and ttft > t.max_time_to_first_token_ms
    ):
        flagged.append("maxTimeToFirstTokenMs")
    return CaseOutcome(
        id=str(case.get("id", index)),
        kind=device_kind(hw, result),
        healthy=bool(case.get("healthy", True)),
        feasible=result.feasible,
        expected_tps=result.expected.decode_tokens_per_second,
        expected_ttft=result.expected.time_to_first_token_ms,
        thresholds=t,
        measured_tps=tps,
        measured_ttft=ttft,
        flagged=flagged,
    )


def _ttft_by_kind(outcomes: list[CaseOutcome]) -> dict[str, dict[str, Any]]:
    """Per device kind: healthy TTFT comparisons, TTFT false alarms, median measured/max."""
    kinds: dict[str, dict[str, Any]] = {}
    for o in outcomes:
        limit = o.thresholds.max_time_to_first_token_ms
        if not o.healthy or not o.measured_ttft or not limit:
            continue
        entry = kinds.setdefault(o.kind, {"cases": 0, "falseAlarms": 0, "ratios": []})
        entry["cases"] += 1
        entry["falseAlarms"] += o.measured_ttft > limit
        entry["ratios"].append(o.measured_ttft / limit)
    return {
        kind: {
            "cases": e["cases"],
            "falseAlarms": e["falseAlarms"],
            "medianMeasuredOverMaxTtft": statistics.median(e["ratios"]),
        }
        for kind, e in sorted(kinds.items())
    }


def summarise(outcomes: list[CaseOutcome]) -> dict[str, Any]:
    healthy = [o for o in outcomes if o.healthy]
    ratios: list[float] = []
    tightness: list[float] = []
    for o in outcomes:
        if o.measured_tps and o.expected_tps:
            ratios.append(o.expected_tps / o.measured_tps)
        if o.measured_ttft and o.expected_ttft:
            ratios.append(o.expected_ttft / o.measured_ttft)
        if o.healthy and o.measured_tps and o.thresholds.min_tokens_per_second:
            tightness.append(o.thresholds.min_tokens_per_second / o.measured_tps)
    within = sum(0.5 <= r <= 2 for r in ratios)
    by_kind = _ttft_by_kind(outcomes)
    return {
        "cases": len(outcomes),
        "healthy": len(healthy),
        "falseAlarms": sum(o.verdict == "false-alarm" for o in outcomes),
        "ttftFalseAlarms": sum(k["falseAlarms"] for k in by_kind.values()),
        "caught": sum(o.verdict == "caught" for o in outcomes),
        "missed": sum(o.verdict == "missed" for o in outcomes),
        "infeasible": sum(o.verdict == "infeasible" for o in outcomes),
        "medianMinTpsOverMeasured": statistics.median(tightness) if tightness else None,
        "expectedWithin0p5To2": within / len(ratios) if ratios else None,
        "comparisons": len(ratios),
        "ttftByKind": by_kind,
    }


def backtest(
    cases: Any, thresholder: Thresholder | None = None, policy: Policy | None = None
) -> dict[str, Any]:
    if not isinstance(cases, list):
        raise InputError("backtest cases: the document must be a list of cases")
    run: Thresholder = thresholder or (lambda h, m, c: compute(h, m, c, policy))
    outcomes = [run_case(case, i, run) for i, case in enumerate(cases)]
    return {"cases": [o.as_json() for o in outcomes], "summary": summarise(outcomes)}
