"""The closed loop: thresholds for this node from the engine, load on a real server, verdict.

Process-agnostic: the server is a base URL (a local process from ``server``, or a pod on
a real node); the thresholds come from the engine for a hardware profile, or from the
document a pod mounts (``inference_thresholds.client.load_thresholds``). The verdict is
the client library's own validation, exactly what a pod-side check runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from inference_thresholds.api import (
    DeploymentContext,
    HardwareProfile,
    ModelSpec,
    ThresholdResult,
    Thresholds,
)
from inference_thresholds.client import LoadedThresholds, ValidationReport, validate
from inference_thresholds.engine import compute

from .load import LoadReport, LoadSpec, drive


def context_for(
    spec: LoadSpec,
    cores: float | None,
    environment: str = "production",
    strictness: str = "standard",
) -> DeploymentContext:
    """The deployment context of a load run: its request shape and the pod's cores."""
    return DeploymentContext.model_validate(
        {
            "environment": environment,
            "strictness": strictness,
            "device": "cpu",
            "workload": {
                "promptTokens": spec.prompt_tokens,
                "outputTokens": spec.n_predict,
                "concurrency": 1,
            },
            "constraints": {"cpuCores": cores} if cores else {},
        }
    )


def engine_thresholds(
    profile: HardwareProfile, model: ModelSpec, context: DeploymentContext
) -> ThresholdResult:
    result = compute(profile, model, context)
    if not result.feasible:
        raise ValueError(f"the engine finds the model infeasible here: {result.reason}")
    return result


def check(
    report: LoadReport,
    thresholds: Thresholds | LoadedThresholds,
    memory_mib: float | None = None,
) -> ValidationReport:
    """The client library's verdict on what the load run measured."""
    observed: dict[str, float | None] = {**report.observed(), "memory_mb": memory_mib}
    return validate(observed, thresholds)


@dataclass
class LoopResult:
    thresholds: ThresholdResult
    report: LoadReport
    validation: ValidationReport


def closed_loop(
    base_url: str,
    profile: HardwareProfile,
    model: ModelSpec,
    spec: LoadSpec,
    context: DeploymentContext,
    memory_mib: float | None = None,
) -> LoopResult:
    """Compute thresholds for ``profile``, drive ``base_url``, validate the measurements."""
    result = engine_thresholds(profile, model, context)
    report = drive(base_url, spec)
    return LoopResult(result, report, check(report, result.thresholds, memory_mib))
