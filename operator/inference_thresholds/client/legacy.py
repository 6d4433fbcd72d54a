"""The seed's API: ``PerformanceThresholds.from_environment()`` over ``BITNET_*`` variables.

Existing validation code keeps its shape; the values now come from the operator's
ConfigMap (via ``envFrom``) instead of being fixed. The seed silently ignored a bad
value; here it is an error naming the variable, since a typo would otherwise quietly
restore the one-size-fits-all default this project exists to replace.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..api.result import Thresholds
from ..api.thresholds_document import DEFAULT_ENV_PREFIX, env_variables
from .loader import LoadedThresholds, load_thresholds
from .numbers import parse_threshold
from .validation import Observed, ValidationReport, validate_thresholds

# The seed's fixed numbers: the fallback when a variable is absent.
SEED_DEFAULTS: dict[str, float] = {
    "min_tokens_per_second": 10.0,
    "max_latency_ms": 5000.0,
    "max_memory_usage_mb": 8192.0,
    "min_speedup_factor": 1.5,
}


@dataclass(frozen=True)
class PerformanceThresholds:
    min_tokens_per_second: float = SEED_DEFAULTS["min_tokens_per_second"]
    max_latency_ms: float = SEED_DEFAULTS["max_latency_ms"]
    max_memory_usage_mb: float = SEED_DEFAULTS["max_memory_usage_mb"]
    min_speedup_factor: float = SEED_DEFAULTS["min_speedup_factor"]

    @classmethod
    def from_environment(
        cls, env: Mapping[str, str] = os.environ, prefix: str = DEFAULT_ENV_PREFIX
    ) -> PerformanceThresholds:
        """Seed defaults, each replaced by ``<prefix><KEY>`` when that variable is set."""
        values = dict(SEED_DEFAULTS)
        variables = env_variables(prefix)
        for field in SEED_DEFAULTS:
            var = variables[field]
            raw = env.get(var, "").strip()
            if raw:
                values[field] = parse_threshold(
                    raw, source=var, fix=f"set {var} to a positive number or unset it"
                )
        return cls(**values)

    @classmethod
    def from_loaded(cls, loaded: LoadedThresholds) -> PerformanceThresholds:
        """The node-aware values of ``load_thresholds()``, seed defaults for the rest."""
        values = {
            f: (v if (v := getattr(loaded.thresholds, f)) is not None else default)
            for f, default in SEED_DEFAULTS.items()
        }
        return cls(**values)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, env: Mapping[str, str] = os.environ
    ) -> PerformanceThresholds:
        """Like ``from_environment`` but node-aware when the ConfigMap is mounted."""
        return cls.from_loaded(load_thresholds(path=path, env=env))

    def to_thresholds(self) -> Thresholds:
        return Thresholds(
            min_tokens_per_second=self.min_tokens_per_second,
            max_latency_ms=self.max_latency_ms,
            max_memory_usage_mb=self.max_memory_usage_mb,
            min_speedup_factor=self.min_speedup_factor,
        )

    def validate(self, observed: Observed | Mapping[str, float | str | None]) -> ValidationReport:
        return validate_thresholds(self.to_thresholds(), observed)
