"""API types: pydantic v2 models, the single source of truth for files, CRD and wire."""

from .base import WireModel
from .context import (
    Constraints,
    DeploymentContext,
    DeviceKind,
    Environment,
    Overrides,
    Priority,
    Strictness,
    Workload,
)
from .hardware import (
    BandwidthSource,
    CpuInfo,
    DeviceInfo,
    GpuPartition,
    GpuSharing,
    HardwareProfile,
    MemoryInfo,
)
from .model_spec import ModelSpec, Runtime
from .result import (
    Complexity,
    Decision,
    DecisionSource,
    DeviceChoice,
    Expected,
    ThresholdResult,
    Thresholds,
)

__all__ = [
    "BandwidthSource",
    "Complexity",
    "Constraints",
    "CpuInfo",
    "Decision",
    "DecisionSource",
    "DeploymentContext",
    "DeviceChoice",
    "DeviceInfo",
    "DeviceKind",
    "Environment",
    "Expected",
    "GpuPartition",
    "GpuSharing",
    "HardwareProfile",
    "MemoryInfo",
    "ModelSpec",
    "Overrides",
    "Priority",
    "Runtime",
    "Strictness",
    "ThresholdResult",
    "Thresholds",
    "WireModel",
    "Workload",
]
