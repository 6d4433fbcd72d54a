"""Compare observed metrics with thresholds: pass/fail per threshold, with margin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from pydantic import Field

from ..api.base import WireModel
from ..api.result import Thresholds
from ..text import readable_number
from .errors import ThresholdsError
from .numbers import parse_observed

Bound = Literal["min", "max"]
Status = Literal["pass", "fail", "skipped"]


@dataclass(frozen=True)
class Metric:
    """One threshold and the observed value it is checked against."""

    threshold: str
    observed: str
    bound: Bound
    unit: str
    label: str


METRICS: tuple[Metric, ...] = (
    Metric("min_tokens_per_second", "tokens_per_second", "min", "tok/s", "decode throughput"),
    Metric("max_time_to_first_token_ms", "time_to_first_token_ms", "max", "ms",
           "time to first token"),
    Metric("max_latency_ms", "latency_ms", "max", "ms", "request latency"),
    Metric("max_memory_usage_mb", "memory_mb", "max", "MiB", "memory"),
    Metric("min_speedup_factor", "speedup_factor", "min", "x", "speedup"),
)  # fmt: skip


@dataclass(frozen=True)
class Observed:
    """Measured performance of a running deployment; ``None`` means not measured."""

    tokens_per_second: float | None = None
    time_to_first_token_ms: float | None = None
    latency_ms: float | None = None
    memory_mb: float | None = None
    speedup_factor: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            raw = getattr(self, f.name)
            if raw is not None:
                object.__setattr__(self, f.name, parse_observed(raw, source=f"observed.{f.name}"))

    @classmethod
    def from_mapping(cls, values: Mapping[str, float | str | None]) -> Observed:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ThresholdsError(
                f"unknown observed metric(s) {', '.join(unknown)}; "
                f"use one of {', '.join(sorted(known))}",
                source="observed",
            )
        kwargs = {k: (None if v is None else parse_observed(v, source=f"observed.{k}"))
                  for k, v in values.items()}  # fmt: skip
        return cls(**kwargs)


class CheckResult(WireModel):
    threshold: str = Field(description="Thresholds field, e.g. min_tokens_per_second.")
    metric: str = Field(description="Readable name of the measured quantity.")
    bound: Bound
    unit: str
    status: Status
    observed: float | None = None
    limit: float | None = None
    margin: float | None = Field(
        None, description="Headroom in the metric's unit: positive passes, negative fails."
    )
    margin_percent: float | None = Field(None, description="margin / limit x 100.")
    source: str | None = Field(None, description="Where the limit came from.")
    message: str


class ValidationReport(WireModel):
    passed: bool = Field(description="No threshold failed, at least one was checked, feasible.")
    checked: int
    failed: int
    results: list[CheckResult]
    problems: list[str] = Field(
        default_factory=list, description="Reasons the report fails beyond single thresholds."
    )

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "fail"]

    def summary(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        return f"{verdict} ({self.checked} checked, {self.failed} failed)"


# Significant digits of numbers in check messages.
_DIGITS = 4


def check_one(
    metric: Metric, observed: float | None, limit: float | None, source: str | None
) -> CheckResult:
    base: dict[str, Any] = {
        "threshold": metric.threshold,
        "metric": metric.label,
        "bound": metric.bound,
        "unit": metric.unit,
        "observed": observed,
        "limit": limit,
        "source": source,
    }
    if limit is None:
        return CheckResult(status="skipped", message=f"no {metric.threshold} threshold", **base)
    if observed is None:
        return CheckResult(status="skipped", message=f"{metric.label} not measured", **base)
    margin = observed - limit if metric.bound == "min" else limit - observed
    percent = 100.0 * margin / limit
    o, lim, u = readable_number(observed, _DIGITS), readable_number(limit, _DIGITS), metric.unit
    if margin >= 0:
        word = ">=" if metric.bound == "min" else "<="
        bound_word = "minimum" if metric.bound == "min" else "maximum"
        message = (
            f"{metric.label} {o} {u} {word} {bound_word} {lim} {u} "
            f"(headroom {readable_number(margin, _DIGITS)} {u}, {percent:.1f}%)"
        )
        status: Status = "pass"
    else:
        relation = "is below the minimum" if metric.bound == "min" else "exceeds the maximum"
        short = readable_number(-margin, _DIGITS)
        message = f"{metric.label} {o} {u} {relation} {lim} {u} by {short} {u} ({-percent:.1f}%)"
        status = "fail"
    return CheckResult(
        status=status, margin=margin, margin_percent=percent, message=message, **base
    )


def validate_thresholds(
    thresholds: Thresholds,
    observed: Observed | Mapping[str, float | str | None],
    *,
    sources: Mapping[str, str] | None = None,
    problems: list[str] | None = None,
) -> ValidationReport:
    """Check every threshold that has both a limit and an observed value.

    A report with nothing checked does not pass: a probe that compares nothing is
    misconfigured, and saying "pass" would hide that.
    """
    obs = observed if isinstance(observed, Observed) else Observed.from_mapping(observed)
    sources = sources or {}
    results = [
        check_one(m, getattr(obs, m.observed), getattr(thresholds, m.threshold),
                  sources.get(m.threshold))
        for m in METRICS
    ]  # fmt: skip
    checked = sum(r.status != "skipped" for r in results)
    failed = sum(r.status == "fail" for r in results)
    all_problems = list(problems or [])
    if checked == 0:
        all_problems.append(
            "nothing was checked: no observed value has a matching threshold "
            "(pass at least one measured metric that the thresholds define)"
        )
    return ValidationReport(
        passed=failed == 0 and not all_problems,
        checked=checked,
        failed=failed,
        results=results,
        problems=all_problems,
    )
