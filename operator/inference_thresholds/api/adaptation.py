"""``spec.adaptation`` and ``status.adaptation``: learning thresholds from observed performance.

The rule these fields drive lives in ``inference_thresholds.adaptation`` (see its module
docstring); the models here are the wire contract and land in the CRD via ``crd.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from .base import WireModel
from .context import MILLISECONDS_MAX, TOKENS_PER_SECOND_MAX
from .node_contract import LABEL_KEY_PATTERN, LABEL_VALUE_MAX, valid_label_value
from .result import Thresholds

ADAPTED = "Adapted"  # condition type

_DURATION = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_LABEL_NAME = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
_SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
_DURATION_MAX_LENGTH = 32
TIMEOUT_MAX_SECONDS = 120.0  # Prometheus's own default query timeout is 2m
MAX_HISTORY_SECONDS = 30 * 86400.0


def parse_duration(text: str) -> float:
    """'1h30m' -> 5400.0 seconds (Prometheus/Go style units ms, s, m, h, d)."""
    if not re.fullmatch(_DURATION, text):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 7d")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def promql_duration(seconds: float) -> str:
    """Seconds -> a PromQL range ('300s' -> '5m'); whole seconds, at least 1s."""
    whole = max(1, round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


class MetricsSource(StrEnum):
    """Which runtime's metric names the observed-performance queries use."""

    VLLM = "vllm"
    SGLANG = "sglang"
    LLAMA_CPP_SERVER = "llama-cpp-server"
    BITNET_CPP = "bitnet-cpp"
    CUSTOM = "custom"


class AdaptationMode(StrEnum):
    """Whether learned thresholds reach the ConfigMap (VPA's updateMode Off vs Auto)."""

    RECOMMEND = "Recommend"
    APPLY = "Apply"


class MatchOperator(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX_MATCH = "=~"
    REGEX_NO_MATCH = "!~"


class SecretKeyRef(WireModel):
    """A key in a Secret in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=_K8S_NAME, description="Secret name.")
    key: str = Field(
        min_length=1, max_length=253, pattern=_SECRET_KEY, description="Key within the Secret."
    )


class PrometheusTls(WireModel):
    """TLS settings for an https Prometheus URL."""

    insecure_skip_verify: bool = Field(
        False, description="Skip server certificate verification (testing only)."
    )
    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding the PEM CA bundle that signed the server cert."
    )


PROMETHEUS_URL_PATTERN = r"^https?://[^\s]+$"


class PrometheusEndpoint(WireModel):
    """Where observed performance is read from (the Prometheus HTTP API)."""

    url: str = Field(
        min_length=8,
        max_length=2048,
        pattern=PROMETHEUS_URL_PATTERN,
        description="Base URL of the Prometheus HTTP API, e.g. "
        "http://prometheus.monitoring.svc:9090 (the operator calls <url>/api/v1/query, "
        "query_range and series).",
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        None,
        description="Secret key holding a bearer token sent as 'Authorization: Bearer'; "
        "never logged.",
    )
    tls: PrometheusTls = Field(default_factory=PrometheusTls, description="TLS options.")
    timeout: str = Field(
        "10s",
        max_length=_DURATION_MAX_LENGTH,
        pattern=_DURATION,
        description="Deadline for each query as a whole (connect, headers and body), e.g. 10s; "
        "at most 2m.",
    )


class CustomQueries(WireModel):
    """PromQL for the observed signals; overrides the source preset's query when set.

    ``$matchers`` is replaced by spec.adaptation.labelMatchers (comma-joined, no braces)
    and ``$window`` by the rate window, so one query serves adaptation and alerts.
    """

    decode_tokens_per_second: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="PromQL giving per-sequence decode tokens/s as one scalar-like sample, "
        "e.g. sum(rate(x_tokens_total{$matchers}[$window])) / sum(rate(x_seconds_total"
        "{$matchers}[$window])).",
    )
    time_to_first_token_seconds: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="PromQL giving time to first token in SECONDS (e.g. a histogram_quantile).",
    )


class LabelMatcher(WireModel):
    """One PromQL label matcher selecting the deployment's series."""

    label: str = Field(
        min_length=1, max_length=128, pattern=_LABEL_NAME, description="Prometheus label name."
    )
    operator: MatchOperator = Field(
        MatchOperator.EQUAL, description="=, !=, =~ (regex) or !~ (negated regex)."
    )
    value: str = Field(max_length=1024, description="Label value or RE2 regex.")

    def promql(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.label}{self.operator.value}"{escaped}"'


class AdaptationBounds(WireModel):
    """Bounds on adapted threshold values (units as in the thresholds)."""

    min_tokens_per_second: float | None = Field(
        None,
        gt=0,
        le=TOKENS_PER_SECOND_MAX,
        description="Bound on the adapted minimum decode tokens/s.",
    )
    max_time_to_first_token_ms: float | None = Field(
        None,
        gt=0,
        le=MILLISECONDS_MAX,
        description="Bound on the adapted maximum time to first token, ms.",
    )


class AlertRulesSpec(WireModel):
    """A generated PrometheusRule with alerts comparing observed performance to thresholds."""

    enabled: bool = Field(
        False,
        description="Keep a PrometheusRule '<name>-thresholds' (owned by this resource) with "
        "multi-window alerts (page: 1h and 5m, ticket: 6h and 30m) built from source/queries "
        "and labelMatchers. Needs the prometheus-operator CRDs; works without "
        "adaptation.enabled.",
    )
    labels: dict[str, Annotated[str, Field(max_length=LABEL_VALUE_MAX)]] = Field(
        default_factory=dict,
        max_length=32,
        description="Extra labels on the PrometheusRule object, e.g. the ruleSelector of your "
        "Prometheus (release: prometheus).",
    )

    @model_validator(mode="after")
    def _labels_valid(self) -> AlertRulesSpec:
        for key, value in self.labels.items():
            if not re.fullmatch(LABEL_KEY_PATTERN, key) or len(key) > 317:
                raise ValueError(f"alertRules.labels: invalid label key {key!r}")
            if not valid_label_value(value):
                raise ValueError(f"alertRules.labels.{key}: invalid label value {value!r}")
        return self


class AdaptationSpec(WireModel):
    """Runtime adaptation: move thresholds toward sustained observed performance, bounded.

    Thresholds only TIGHTEN (higher minimum tokens/s, lower maximum TTFT) toward
    performance that is sustainedly better than the current threshold implies; a drop
    in observed performance never lowers them. They loosen only when the physical
    expectation changes (spec or hardware) or resetToken changes.
    """

    enabled: bool = Field(
        False, description="Learn thresholds from observed performance within bounds."
    )
    mode: AdaptationMode = Field(
        AdaptationMode.APPLY,
        description="Apply: learned thresholds replace computed ones in the ConfigMap. "
        "Recommend: they are only shown (status.adaptation, ThresholdRecommended Events); "
        "the ConfigMap keeps the computed thresholds (as VPA's updateMode Off).",
    )
    prometheus: PrometheusEndpoint | None = Field(
        None,
        description="The Prometheus to query; unset: the operator's default "
        "(--prometheus-url, chart value operator.prometheus.url).",
    )
    source: MetricsSource = Field(
        MetricsSource.VLLM,
        description="Metric-name preset: vllm (old and new metric names), sglang, "
        "llama-cpp-server, bitnet-cpp (llama.cpp server metrics), or custom (set queries).",
    )
    queries: CustomQueries = Field(
        default_factory=CustomQueries,
        description="Custom PromQL; required for source custom, else overrides the preset.",
    )
    label_matchers: list[LabelMatcher] = Field(
        default_factory=list,
        max_length=32,
        description="Label matchers selecting this deployment's series, e.g. "
        "[{label: namespace, value: ml}, {label: model_name, value: llama-3.1-8b}].",
    )
    node_label: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        pattern=_LABEL_NAME,
        description="Prometheus label carrying the node name of each series (e.g. node, set "
        "by a relabeling of __meta_kubernetes_pod_node_name). Set: each hardware class "
        "adapts from the series of its own nodes. Unset: one deployment-wide observation "
        "adapts the effective class only.",
    )
    interval: str = Field(
        "1m",
        max_length=_DURATION_MAX_LENGTH,
        pattern=_DURATION,
        description="How often Prometheus is queried (one sample each).",
    )
    window: str = Field(
        "5m",
        max_length=_DURATION_MAX_LENGTH,
        pattern=_DURATION,
        description="Rate window of each sample's query.",
    )
    history: str = Field(
        "24h",
        max_length=_DURATION_MAX_LENGTH,
        pattern=_DURATION,
        description="How far back a new resource (or a newly selected class) loads its "
        "history with a range query, so thresholds move from the first interval; 0s "
        "disables. At most 30d and 500 points (the step grows to fit).",
    )
    half_life: str = Field(
        "24h",
        max_length=_DURATION_MAX_LENGTH,
        pattern=_DURATION,
        description="Half-life of the exponential decay: a sample this old counts half.",
    )
    min_samples: int = Field(
        30, ge=1, le=100_000, description="Samples needed before any threshold moves."
    )
    max_step_percent: float = Field(
        5.0, gt=0, le=100, description="Largest relative move of a threshold per interval, %."
    )
    decode_quantile: float = Field(
        0.5,
        gt=0,
        lt=1,
        description="Quantile of the time between tokens whose inverse is the observed "
        "decode speed (0.5: median; 0.9: the speed 90% of tokens reach), read from the "
        "decayed history of the runtime's histogram.",
    )
    ttft_quantile: float = Field(
        0.9,
        gt=0,
        lt=1,
        description="Quantile of time to first token that is observed (from the decayed "
        "history of the runtime's histogram).",
    )
    floors: AdaptationBounds = Field(
        default_factory=AdaptationBounds,
        description="Adapted thresholds never go below these values.",
    )
    ceilings: AdaptationBounds = Field(
        default_factory=AdaptationBounds,
        description="Adapted thresholds never go above these values (the physical expectation "
        "caps minTokensPerSecond anyway).",
    )
    alert_rules: AlertRulesSpec = Field(
        default_factory=AlertRulesSpec,
        description="Generated alert rules (PrometheusRule) for this deployment.",
    )
    reset_token: str | None = Field(
        None,
        max_length=253,
        description="Change this value to discard learned state and return to the computed "
        "thresholds: the explicit way to loosen adapted thresholds.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> AdaptationSpec:
        if self.source is MetricsSource.CUSTOM and not (
            self.queries.decode_tokens_per_second or self.queries.time_to_first_token_seconds
        ):
            raise ValueError(
                "adaptation.source custom needs queries.decodeTokensPerSecond or "
                "queries.timeToFirstTokenSeconds"
            )
        for name in AdaptationBounds.model_fields:
            lo, hi = getattr(self.floors, name), getattr(self.ceilings, name)
            if lo is not None and hi is not None and lo > hi:
                alias = AdaptationBounds.model_fields[name].alias
                raise ValueError(
                    f"adaptation.floors.{alias} ({lo}) exceeds ceilings.{alias} ({hi})"
                )
        if parse_duration(self.interval) < 1:
            raise ValueError("adaptation.interval must be at least 1s")
        if parse_duration(self.half_life) <= 0:
            raise ValueError("adaptation.halfLife must be positive")
        for name, value, high in (
            ("interval", self.interval, 86_400.0),
            ("window", self.window, 30 * 86_400.0),
            ("halfLife", self.half_life, 3650 * 86_400.0),
        ):
            if parse_duration(value) > high:
                raise ValueError(
                    f"adaptation.{name} {value} is longer than {promql_duration(high)}"
                )
        if self.prometheus is not None:
            timeout = parse_duration(self.prometheus.timeout)
            if not 0 < timeout <= TIMEOUT_MAX_SECONDS:
                raise ValueError(
                    f"adaptation.prometheus.timeout {self.prometheus.timeout} must be more than "
                    "0 and at most 2m"
                )
        if parse_duration(self.history) > MAX_HISTORY_SECONDS:
            raise ValueError("adaptation.history must be at most 30d")
        return self

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)

    @property
    def window_seconds(self) -> float:
        return parse_duration(self.window)

    @property
    def half_life_seconds(self) -> float:
        return parse_duration(self.half_life)

    @property
    def history_seconds(self) -> float:
        return parse_duration(self.history)


# CEL rules (paths as in crd.CEL_RULES) mirroring the validator above. (Durations are
# checked by pattern; their bounds, like history <= 30d, by the operator: InvalidSpec.)
ADAPTATION_CEL_RULES: dict[str, list[dict[str, Any]]] = {
    "spec.adaptation.alertRules.labels": [
        {
            "rule": "self.all(k, size(k) <= 317)",
            "message": "alertRules.labels keys are at most 317 characters",
        }
    ],
    "spec.adaptation": [
        {
            "rule": "self.source != 'custom' || has(self.queries.decodeTokensPerSecond) || "
            "has(self.queries.timeToFirstTokenSeconds)",
            "message": "adaptation.source custom needs queries.decodeTokensPerSecond or "
            "queries.timeToFirstTokenSeconds",
            "fieldPath": ".queries",
        },
        {
            "rule": "!has(self.floors.minTokensPerSecond) || "
            "!has(self.ceilings.minTokensPerSecond) || "
            "self.floors.minTokensPerSecond <= self.ceilings.minTokensPerSecond",
            "message": "adaptation.floors.minTokensPerSecond exceeds ceilings.minTokensPerSecond",
            "fieldPath": ".floors.minTokensPerSecond",
        },
        {
            "rule": "!has(self.floors.maxTimeToFirstTokenMs) || "
            "!has(self.ceilings.maxTimeToFirstTokenMs) || "
            "self.floors.maxTimeToFirstTokenMs <= self.ceilings.maxTimeToFirstTokenMs",
            "message": "adaptation.floors.maxTimeToFirstTokenMs exceeds "
            "ceilings.maxTimeToFirstTokenMs",
            "fieldPath": ".floors.maxTimeToFirstTokenMs",
        },
    ],
}


# --- status ----------------------------------------------------------------------------


class SignalState(WireModel):
    """Decayed history of one observed signal and the threshold it drives."""

    query: str = Field("", max_length=8192, description="The PromQL evaluated each interval.")
    samples: int = Field(
        0, ge=0, description="Intervals with data since the last reset (not decayed)."
    )
    weight: float = Field(0.0, ge=0, description="Sum of decayed sample weights (1 per sample).")
    histogram: dict[str, float] = Field(
        default_factory=dict,
        max_length=400,
        description="Decayed distribution of the signal in seconds: bucket index i covers "
        "[1e-4 x 1.05^i, 1e-4 x 1.05^(i+1)) s; each interval's distribution weighs 1.",
    )
    observed: float | None = Field(
        None,
        description="The observed level at the configured quantile of the decayed history "
        "(tok/s for decode, ms for TTFT).",
    )
    last_value: float | None = Field(
        None, description="The same quantile of the latest interval alone."
    )
    first_sample_time: str | None = Field(None, description="First sample since reset (RFC 3339).")
    last_sample_time: str | None = Field(None, description="Most recent sample (RFC 3339).")
    confidence: float = Field(
        0.0,
        ge=0,
        le=1,
        description="weight / (weight a sample every interval forever would reach) = "
        "1 - 2^(-history/halfLife) at a steady rate; blends observed into the target.",
    )
    target: float | None = Field(
        None, description="computed + confidence x (observed x slack - computed)."
    )
    threshold: float | None = Field(
        None, description="The learned threshold now (applied, or recommended only)."
    )
    last_move_time: str | None = Field(None, description="When the threshold last moved.")
    note: str = Field(
        "", max_length=1024, description="Why the threshold moved or held at the last interval."
    )


class AdaptationBasis(WireModel):
    """The engine's numbers the learned state was built on; a change resets or rebases it."""

    expected_decode_tokens_per_second: float | None = Field(
        None, description="Physically expected decode tokens/s (ceiling of the minimum)."
    )
    computed_min_tokens_per_second: float | None = Field(
        None, description="Engine threshold before adaptation."
    )
    expected_time_to_first_token_ms: float | None = Field(
        None, description="Physically expected TTFT, ms (floor of the maximum)."
    )
    computed_max_time_to_first_token_ms: float | None = Field(
        None, description="Engine TTFT threshold before adaptation, ms."
    )


class ClassAdaptation(WireModel):
    """What was learned for one hardware class."""

    name: str = Field(max_length=253, description="The hardware class (as in status.classes).")
    basis: AdaptationBasis = Field(
        default_factory=AdaptationBasis, description="Engine numbers the state is built on."
    )
    decode: SignalState = Field(
        default_factory=SignalState, description="Observed decode speed per sequence."
    )
    ttft: SignalState = Field(
        default_factory=SignalState, description="Observed time to first token."
    )
    thresholds: Thresholds = Field(
        default_factory=Thresholds,
        description="Learned thresholds of this class (in the ConfigMap in mode Apply).",
    )
    seeded: bool = Field(
        False,
        description="Whether history was loaded from Prometheus (once, when the class "
        "first adapts; not after a reset or a new expectation).",
    )


class AdaptationStatus(WireModel):
    """Learned state per hardware class (survives operator restarts)."""

    reset_token: str | None = Field(None, description="spec.adaptation.resetToken last applied.")
    mode: AdaptationMode = Field(AdaptationMode.APPLY, description="spec.adaptation.mode in use.")
    classes: list[ClassAdaptation] = Field(
        default_factory=list,
        max_length=64,
        description="One entry per adapted class: every feasible class with nodeLabel "
        "(at most 16), else the effective class.",
    )
    healthy: bool = Field(True, description="Whether the last interval's queries succeeded.")
    reason: str = Field(
        "Pending",
        max_length=128,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason for the Adapted condition.",
    )
    message: str = Field("", max_length=4096, description="Explanation for people.")
    last_query_time: str | None = Field(None, description="Last Prometheus query (RFC 3339).")

    def entry(self, name: str) -> ClassAdaptation | None:
        return next((c for c in self.classes if c.name == name), None)
