"""Pod-side client: load the generated thresholds and validate observed performance.

Imports only pydantic and the standard library, so inference images can use it
without kopf or the kubernetes client::

    from inference_thresholds.client import load_thresholds

    loaded = load_thresholds()          # /etc/inference-thresholds, $NODE_NAME, env
    report = loaded.validate({"tokens_per_second": 12.5, "time_to_first_token_ms": 800})
    if not report.passed:
        for failure in report.failures:
            print(failure.message)

Configuration (env): ``INFERENCE_THRESHOLDS_PATH`` (mounted ConfigMap directory or
thresholds.json; default ``/etc/inference-thresholds``), ``NODE_NAME`` (from the
downward API), ``INFERENCE_THRESHOLDS_ENV_PREFIX`` (default ``BITNET_``) and the
threshold variables ``<PREFIX>MIN_TOKENS_PER_SECOND``, ``<PREFIX>MAX_LATENCY_MS``,
``<PREFIX>MAX_MEMORY_MB``, ``<PREFIX>MIN_SPEEDUP_FACTOR``,
``<PREFIX>MAX_TIME_TO_FIRST_TOKEN_MS``.
"""

from .errors import ThresholdsError, ThresholdsNotFoundError
from .legacy import SEED_DEFAULTS, PerformanceThresholds
from .loader import (
    DEFAULT_PATH,
    HASH_ENV,
    NODE_ENV,
    PATH_ENV,
    PREFIX_ENV,
    LoadedThresholds,
    ThresholdSource,
    load_thresholds,
    read_thresholds_document,
    validate,
)
from .validation import METRICS, CheckResult, Metric, Observed, ValidationReport

__all__ = [
    "DEFAULT_PATH", "HASH_ENV", "METRICS", "NODE_ENV", "PATH_ENV", "PREFIX_ENV", "SEED_DEFAULTS",
    "CheckResult", "LoadedThresholds", "Metric", "Observed", "PerformanceThresholds",
    "ThresholdSource", "ThresholdsError", "ThresholdsNotFoundError", "ValidationReport",
    "load_thresholds", "read_thresholds_document", "validate",
]  # fmt: skip
