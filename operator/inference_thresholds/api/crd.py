"""The ``InferenceThresholds`` custom resource: spec and status, the single source of truth.

``crdgen`` turns these models into the CRD's structural OpenAPI schema; the operator
validates every object with them again, so a CR that slipped past an older CRD still
gets a clear ``Ready=False`` instead of a crash.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from .adaptation import ADAPTATION_CEL_RULES, AdaptationSpec, AdaptationStatus
from .base import WireModel
from .context import DeploymentContext, Overrides
from .model_spec import ModelSpec
from .node_contract import LABEL_KEY_PATTERN, LABEL_VALUE_MAX, LABEL_VALUE_PATTERN
from .result import Expected, Thresholds
from .thresholds_document import DEFAULT_ENV_PREFIX

GROUP = "thresholds.inference.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "InferenceThresholds"
PLURAL = "inferencethresholds"
SINGULAR = "inferencethresholds"
SHORT_NAMES = ("ith",)
CONFIGMAP_SUFFIX = "-thresholds"
LABEL_KEY_MAX = 317  # a 253-character DNS prefix, '/', a 63-character name

# Condition types, in the order people read them.
READY = "Ready"
FEASIBLE = "Feasible"
NODES_MATCHED = "NodesMatched"
CONFIGMAP_SYNCED = "ConfigMapSynced"
CONDITION_TYPES = (READY, FEASIBLE, NODES_MATCHED, CONFIGMAP_SYNCED)
SPEC_WARNINGS = "SpecWarnings"  # present only while the spec contradicts itself

_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_ENV_PREFIX = r"^([A-Za-z_][A-Za-z0-9_]*)?$"
LabelValue = Annotated[str, Field(max_length=LABEL_VALUE_MAX, pattern=LABEL_VALUE_PATTERN)]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


INT64_MAX = 2**63 - 1
_DECIMAL = re.compile(r"[0-9]{1,19}")


def selector_integer(text: str) -> int | None:
    """A Gt/Lt operand as node affinity reads it (strconv.ParseInt base 10, int64), limited to
    what a label value can hold: decimal digits only; None for anything else."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if value <= INT64_MAX else None


class MatchExpression(WireModel):
    """One node label requirement, as in a Kubernetes label selector, plus node affinity's
    Gt and Lt."""

    key: str = Field(
        min_length=1,
        max_length=LABEL_KEY_MAX,
        pattern=LABEL_KEY_PATTERN,
        description="Node label key.",
    )
    operator: SelectorOperator = Field(
        description="In and NotIn need values; Exists and DoesNotExist take none; Gt and Lt "
        "(node affinity) compare the label as an integer with exactly one integer value."
    )
    values: list[LabelValue] | None = Field(
        None,
        max_length=256,
        description="Label values for In and NotIn (at least one); must be absent for Exists "
        "and DoesNotExist; one decimal integer for Gt and Lt (a node whose label is not an "
        "integer does not match).",
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> MatchExpression:
        op = self.operator
        if op in (SelectorOperator.GT, SelectorOperator.LT):
            if (
                self.values is None
                or len(self.values) != 1
                or selector_integer(self.values[0]) is None
            ):
                raise ValueError(
                    f"operator {op.value} needs exactly one value in values, a decimal "
                    f"integer from 0 to {INT64_MAX} (node affinity compares integers)"
                )
        elif op in (SelectorOperator.IN, SelectorOperator.NOT_IN):
            if not self.values:
                raise ValueError(f"operator {op.value} needs at least one value in values")
        elif self.values:
            raise ValueError(f"operator {op.value} takes no values; remove values")
        return self


class NodeSelector(WireModel):
    """Which nodes the thresholds are for; empty selects every node."""

    match_labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=64,
        description="Node labels that must all be present with these values.",
    )
    match_expressions: list[MatchExpression] = Field(
        default_factory=list,
        max_length=64,
        description="Further label requirements, all of which must hold.",
    )

    @field_validator("match_labels")
    @classmethod
    def _keys_bounded(cls, labels: dict[str, str]) -> dict[str, str]:
        long = [k for k in labels if len(k) > LABEL_KEY_MAX]
        if long:
            raise ValueError(
                f"label keys are at most {LABEL_KEY_MAX} characters ({len(long)} longer)"
            )
        return labels


class ConfigMapSpec(WireModel):
    """The generated ConfigMap pods mount or use with envFrom."""

    name: str | None = Field(
        None,
        max_length=253,
        pattern=_DNS_SUBDOMAIN,
        description="Name of the generated ConfigMap in the resource's namespace; defaults to "
        "'<name>-thresholds'.",
    )
    env_prefix: str = Field(
        DEFAULT_ENV_PREFIX,
        max_length=64,
        pattern=_ENV_PREFIX,
        description="Prefix of the env-style keys (PREFIX + MIN_TOKENS_PER_SECOND, ...); the "
        "default BITNET_ keeps legacy validation code working.",
    )


class InferenceThresholdsSpec(WireModel):
    """What to compute thresholds for: which nodes, which model, in which context."""

    node_selector: NodeSelector = Field(
        default_factory=NodeSelector,
        description="Nodes whose hardware the thresholds are computed for; empty selects all.",
    )
    model: ModelSpec = Field(
        description="The served model: a catalog preset and/or explicit architecture "
        "(explicit fields win over the preset). Needs preset or parametersBillion."
    )
    context: DeploymentContext = Field(
        default_factory=DeploymentContext,
        description="Deployment stage, priority, strictness, workload shape and pod limits.",
    )
    overrides: Overrides = Field(
        default_factory=Overrides,
        description="Explicit thresholds; each set field wins over context.overrides and over "
        "the computed value, and is recorded as an override.",
    )
    config_map: ConfigMapSpec = Field(
        default_factory=ConfigMapSpec, description="The generated ConfigMap."
    )
    adaptation: AdaptationSpec = Field(
        default_factory=AdaptationSpec,
        description="Runtime adaptation from observed performance.",
    )

    @field_validator("model")
    @classmethod
    def _model_is_identified(cls, model: ModelSpec) -> ModelSpec:
        if model.preset is None and model.parameters_billion is None:
            raise ValueError("needs a preset (e.g. llama-3.1-8b) or parametersBillion")
        return model

    def merged_overrides(self) -> Overrides:
        """context.overrides with every field set in spec.overrides replacing it."""
        merged = self.context.overrides.model_dump(exclude_none=True)
        merged.update(self.overrides.model_dump(exclude_none=True))
        return Overrides(**merged)

    def effective_context(self) -> DeploymentContext:
        """The context handed to the engine: overrides merged, top level winning."""
        return self.context.model_copy(update={"overrides": self.merged_overrides()})

    def config_map_name(self, cr_name: str) -> str:
        return self.config_map.name or f"{cr_name}{CONFIGMAP_SUFFIX}"

    def warnings(self) -> list[str]:
        """Values valid one by one that contradict each other: reported, not rejected."""
        found = []
        o = self.merged_overrides()
        latency, ttft = o.max_latency_ms, o.max_time_to_first_token_ms
        if latency is not None and ttft is not None and latency < ttft:
            found.append(
                f"overrides maxLatencyMs ({latency:g}) is below maxTimeToFirstTokenMs ({ttft:g}): "
                "a request's latency includes its first token, so a request within the TTFT "
                "limit still fails on latency; raise maxLatencyMs or lower "
                "maxTimeToFirstTokenMs"
            )
        limit, memory = self.context.constraints.memory_mib, o.max_memory_usage_mb
        if limit is not None and memory is not None and memory > limit:
            found.append(
                f"overrides maxMemoryUsageMb ({memory:g}) exceeds context.constraints.memoryMiB "
                f"({limit}): the pod is OOM-killed before that threshold can trip"
            )
        return found


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(WireModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: str = Field(
        max_length=316, description="Ready, Feasible, NodesMatched, ConfigMapSynced or Adapted."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="CamelCase reason, for programs.",
    )
    message: str = Field("", max_length=32768, description="What happened and what to do.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation this condition was computed for."
    )


class ClassStatus(WireModel):
    """Thresholds for one hardware class among the selected nodes."""

    name: str = Field(description="Stable class name derived from the hardware.")
    node_count: int = Field(ge=0, description="Selected nodes in this class.")
    hardware_summary: str = Field(description="Short human summary of the class's hardware.")
    hardware_source: str | None = Field(
        None,
        description="Where the hardware came from, the sources that gave fields joined by "
        "'+': agent, gfd (GPU Feature Discovery), nfd, capacity (node resources).",
    )
    feasible: bool = Field(description="Whether the model fits this hardware.")
    reason: str | None = Field(None, description="Why the model does not fit, when it does not.")
    thresholds: Thresholds = Field(
        default_factory=Thresholds, description="Thresholds for pods on this class."
    )
    expected: Expected = Field(
        default_factory=Expected, description="Physically expected performance on this class."
    )


class ConfigMapRef(WireModel):
    name: str = Field(description="Name of the generated ConfigMap in this namespace.")
    content_hash: str | None = Field(None, description="Content hash of its thresholds document.")


class InferenceThresholdsStatus(WireModel):
    """What the operator computed and wrote, for people and for kubectl."""

    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation of the last reconciled spec."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, Feasible, NodesMatched, ConfigMapSynced (and Adapted).",
    )
    nodes_matched: int | None = Field(None, ge=0, description="Nodes the selector matches.")
    classes: list[ClassStatus] = Field(
        default_factory=list, description="One entry per hardware class among selected nodes."
    )
    effective_class: str | None = Field(
        None, description="Class whose thresholds are effective: the slowest feasible class."
    )
    effective: Thresholds = Field(
        default_factory=Thresholds, description="Thresholds of the effective class."
    )
    config_map_ref: ConfigMapRef | None = Field(None, description="The generated ConfigMap.")
    last_computed_time: str | None = Field(
        None,
        description="When the thresholds last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    adaptation: AdaptationStatus | None = Field(
        None, description="Runtime adaptation: learned state and adapted thresholds."
    )

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


# Cross-field rules the apiserver checks (CEL), keyed by the schema path they attach to:
# dotted property names from the root, "[]" for list items. The pydantic validators above
# implement the same rules for objects that bypassed an older CRD.
CelRule = dict[str, Any]
CEL_RULES: dict[str, list[CelRule]] = {
    **ADAPTATION_CEL_RULES,
    "spec.model": [
        {
            "rule": "has(self.preset) || has(self.parametersBillion)",
            "message": "spec.model needs a preset (e.g. llama-3.1-8b) or parametersBillion",
            "reason": "FieldValueRequired",
        },
        {
            "rule": "!has(self.activeParametersBillion) || !has(self.parametersBillion) || "
            "self.activeParametersBillion <= self.parametersBillion",
            "message": "activeParametersBillion must not exceed parametersBillion",
            "fieldPath": ".activeParametersBillion",
        },
    ],
    "spec.nodeSelector.matchLabels": [
        {
            "rule": f"self.all(k, size(k) <= {LABEL_KEY_MAX})",
            "message": f"label keys are at most {LABEL_KEY_MAX} characters",
        }
    ],
    "spec.nodeSelector.matchExpressions[]": [
        {
            "rule": "self.operator in ['In', 'NotIn'] ? "
            "(has(self.values) && size(self.values) > 0) : "
            "(self.operator in ['Gt', 'Lt'] || !has(self.values) || size(self.values) == 0)",
            "message": "values: In and NotIn need at least one value; Exists and DoesNotExist "
            "take none",
            "fieldPath": ".values",
        },
        {
            # Digits only (a label value cannot start with '-' or '+'); 19 digits compare
            # as strings against int64's maximum, as strconv.ParseInt would reject more.
            "rule": "!(self.operator in ['Gt', 'Lt']) || (has(self.values) && "
            "size(self.values) == 1 && self.values[0].matches('^[0-9]{1,19}$') && "
            f"(size(self.values[0]) < 19 || self.values[0] <= '{INT64_MAX}'))",
            "message": "values: Gt and Lt need exactly one value, a decimal integer from 0 to "
            f"{INT64_MAX} (node affinity compares integers)",
            "fieldPath": ".values",
        },
    ],
    "": [
        {
            "rule": "has(self.spec.configMap.name) || size(self.metadata.name) <= "
            f"{253 - len(CONFIGMAP_SUFFIX)}",
            "message": "metadata.name is too long to derive the ConfigMap name "
            f"'<name>{CONFIGMAP_SUFFIX}'; set spec.configMap.name",
        }
    ],
}

PrinterColumn = dict[str, str]
PRINTER_COLUMNS: list[PrinterColumn] = [
    {
        "name": "Min Tok/s",
        "type": "number",
        "jsonPath": ".status.effective.minTokensPerSecond",
        "description": "Effective minimum decode tokens/s.",
    },
    {
        "name": "Max TTFT",
        "type": "number",
        "jsonPath": ".status.effective.maxTimeToFirstTokenMs",
        "description": "Effective maximum time to first token, ms.",
    },
    {
        "name": "Max Mem",
        "type": "number",
        "jsonPath": ".status.effective.maxMemoryUsageMb",
        "description": "Effective maximum memory, MiB.",
    },
    {
        "name": "Nodes",
        "type": "integer",
        "jsonPath": ".status.nodesMatched",
        "description": "Nodes the selector matches.",
    },
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Whether the ConfigMap holds thresholds for the current spec.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

# Descriptions for fields of shared models that carry none, so `kubectl explain` helps.
FALLBACK_DESCRIPTIONS: dict[str, str] = {
    "decodeTokensPerSecond": "Expected decode tokens/s.",
    "timeToFirstTokenMs": "Expected time to first token, ms.",
    "latencyMs": "Expected request latency, ms.",
    "memoryRequiredMiB": "Memory the model needs, MiB.",
    "speedupFactor": "Expected speedup over an FP16 llama.cpp baseline.",
}
