"""What the engine returns: expectations, thresholds and the decision log."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from .base import WireModel

DecisionSource = Literal[
    "input",
    "label",
    "table",
    "measured",
    "estimate",
    "policy",
    "environment",
    "override",
    "computed",
]


class Complexity(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    EXTRA_LARGE = "extraLarge"


class Decision(WireModel):
    step: str = Field(description="What was decided, e.g. decode.bandwidth.")
    value: float | str | None = Field(None, description="The value chosen.")
    unit: str | None = Field(None, description="Unit of the value.")
    source: DecisionSource = Field(description="Where the value comes from.")
    detail: str = Field("", description="The arithmetic or the reason, readable.")


class Expected(WireModel):
    decode_tokens_per_second: float | None = None
    time_to_first_token_ms: float | None = None
    latency_ms: float | None = None
    memory_required_mib: float | None = None
    speedup_factor: float | None = None


class Thresholds(WireModel):
    min_tokens_per_second: float | None = Field(None, description="Minimum decode tokens/s.")
    max_time_to_first_token_ms: float | None = Field(None, description="Maximum TTFT, ms.")
    max_latency_ms: float | None = Field(None, description="Maximum request latency, ms.")
    max_memory_usage_mb: float | None = Field(None, description="Maximum memory, MiB.")
    min_speedup_factor: float | None = Field(
        None, description="Minimum speedup over an FP16 llama.cpp baseline."
    )


class DeviceChoice(WireModel):
    kind: Literal["cpu", "gpu", "accelerator"]
    product: str | None = None
    count: int = 1


class ThresholdResult(WireModel):
    feasible: bool
    reason: str | None = Field(None, description="Why the model is infeasible, when it is.")
    complexity: Complexity
    device: DeviceChoice | None = None
    expected: Expected = Field(default_factory=Expected)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    decisions: list[Decision] = Field(default_factory=list)
