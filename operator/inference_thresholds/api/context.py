"""Deployment context: where and how strictly the model is served."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from .base import WireModel
from .hardware import CORES_MAX, MEMORY_MAX_MIB
from .node_contract import RESOURCE_NAME_PATTERN

# Physical bounds of thresholds (overrides and adaptation bounds): a value beyond these is
# not a threshold any deployment can meet or miss, and renders as a 300-digit env value.
TOKENS_PER_SECOND_MAX = 100_000.0
"""Per sequence: the fastest published single-stream decode is ~2,500 tok/s."""
MILLISECONDS_MAX = 86_400_000.0
"""One day: a first token or a request slower than that is not a latency."""
MIN_CPU_CORES = 0.001
SPEEDUP_MAX = 1_000.0
"""bitnet.cpp reports up to 6.17x over FP16 llama.cpp."""


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    STAGING = "staging"
    PRODUCTION = "production"
    EDGE = "edge"


class Priority(StrEnum):
    LATENCY = "latency"
    THROUGHPUT = "throughput"
    MEMORY = "memory"
    BALANCED = "balanced"


class Strictness(StrEnum):
    LENIENT = "lenient"
    STANDARD = "standard"
    STRICT = "strict"


class DeviceKind(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    GPU = "gpu"
    ACCELERATOR = "accelerator"


class Workload(WireModel):
    prompt_tokens: int = Field(512, ge=1, le=10_000_000, description="Prompt tokens per request.")
    output_tokens: int = Field(
        128, ge=1, le=10_000_000, description="Generated tokens per request."
    )
    concurrency: int = Field(1, ge=1, le=100_000, description="Concurrent sequences.")


class Constraints(WireModel):
    cpu_cores: float | None = Field(
        None, gt=0, le=CORES_MAX, description="CPU cores the pod may use (limit)."
    )
    memory_mib: int | None = Field(
        None, ge=1, le=MEMORY_MAX_MIB, description="Memory the pod may use (limit), MiB."
    )
    gpus: int | None = Field(
        None, ge=1, le=64, description="GPUs the pod uses (default: fewest that hold the model)."
    )
    gpu_resource: str | None = Field(
        None,
        max_length=317,
        pattern=RESOURCE_NAME_PATTERN,
        description="GPU resource the pod requests in resources.limits, when nodes offer "
        "several: nvidia.com/gpu (a whole GPU, or what the device plugin shares under that "
        "name), nvidia.com/mig-1g.10gb (a MIG instance), nvidia.com/gpu.shared (a shared "
        "replica). Default: nvidia.com/gpu where offered, else the smallest slice.",
    )

    @field_validator("cpu_cores")
    @classmethod
    def _schedulable(cls, cores: float | None) -> float | None:
        # Not as the schema's minimum: the apiserver compares an integer 0 with a minimum
        # of 0.001 as integers (0 >= 0) and lets it through; exclusiveMinimum 0 holds.
        if cores is not None and cores < MIN_CPU_CORES:
            raise ValueError(f"at least {MIN_CPU_CORES} (1m, the smallest CPU Kubernetes grants)")
        return cores


class Overrides(WireModel):
    """Explicit thresholds: they win over everything and are recorded as overrides."""

    min_tokens_per_second: float | None = Field(
        None, gt=0, le=TOKENS_PER_SECOND_MAX, description="Minimum decode tokens/s."
    )
    max_time_to_first_token_ms: float | None = Field(
        None, gt=0, le=MILLISECONDS_MAX, description="Maximum time to first token, ms."
    )
    max_latency_ms: float | None = Field(
        None, gt=0, le=MILLISECONDS_MAX, description="Maximum request latency, ms."
    )
    max_memory_usage_mb: float | None = Field(
        None, gt=0, le=MEMORY_MAX_MIB, description="Maximum memory, MiB."
    )
    min_speedup_factor: float | None = Field(
        None, gt=0, le=SPEEDUP_MAX, description="Minimum speedup over the FP16 llama.cpp baseline."
    )


class DeploymentContext(WireModel):
    environment: Environment = Field(Environment.PRODUCTION, description="Deployment stage.")
    priority: Priority = Field(Priority.BALANCED, description="What matters most.")
    strictness: Strictness = Field(Strictness.STANDARD, description="How tight thresholds are.")
    device: DeviceKind = Field(DeviceKind.AUTO, description="Which device serves the model.")
    workload: Workload = Field(default_factory=Workload, description="Request shape.")
    constraints: Constraints = Field(default_factory=Constraints, description="Pod limits.")
    overrides: Overrides = Field(default_factory=Overrides, description="Explicit thresholds.")
