"""The threshold engine: (hardware, model, context[, policy]) -> ThresholdResult.

Imports without kopf or the kubernetes client (pods use it).
"""

from .catalog import PRESETS, UnknownPresetError, resolve_model
from .compute import compute
from .devices import HardwareInputError
from .explain import render_text
from .policy import Policy, PolicyError, env_overrides, load_policy

__all__ = [
    "PRESETS",
    "HardwareInputError",
    "Policy",
    "PolicyError",
    "UnknownPresetError",
    "compute",
    "env_overrides",
    "load_policy",
    "render_text",
    "resolve_model",
]
