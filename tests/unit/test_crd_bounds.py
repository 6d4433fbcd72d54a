"""Every user-set string, list, map and number in the CRD has an upper bound, generated from
the pydantic models, and the apiserver-side rules agree with the operator's.

Regression for issue 15 case 6: a 1 MB model.preset was accepted (no maxLength anywhere)
and an override of 1e308 became a 309-digit env value.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from inference_thresholds.api.crd import InferenceThresholdsSpec
from inference_thresholds.api.crdgen import openapi_schema


def _unbounded(node: dict[str, Any], path: str) -> Iterator[str]:
    kind = node.get("type")
    if kind == "string" and "maxLength" not in node and "enum" not in node:
        yield f"{path}: string without maxLength"
    if kind == "array":
        if "maxItems" not in node:
            yield f"{path}: list without maxItems"
        yield from _unbounded(node["items"], f"{path}[]")
    if kind in ("number", "integer") and "maximum" not in node:
        yield f"{path}: number without maximum"
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in extra and "maxProperties" not in node:
                yield f"{path}: map without maxProperties"
            yield from _unbounded(extra, f"{path}{{}}")
        for name, child in (node.get("properties") or {}).items():
            yield from _unbounded(child, f"{path}.{name}")


def test_every_spec_field_is_bounded() -> None:
    spec = openapi_schema()["properties"]["spec"]
    assert list(_unbounded(spec, "spec")) == []


def test_the_check_sees_an_unbounded_field() -> None:
    sample = {
        "type": "object",
        "properties": {
            "a": {"type": "string"},
            "b": {"type": "array", "items": {"type": "number"}},
            "c": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }
    assert list(_unbounded(sample, "x")) == [
        "x.a: string without maxLength",
        "x.b: list without maxItems",
        "x.b[]: number without maximum",
        "x.c: map without maxProperties",
        "x.c{}: string without maxLength",
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": {"preset": "x" * 1_000_000}}, "model.preset"),
        (
            {"model": {"preset": "llama-3.1-8b"}, "overrides": {"maxLatencyMs": 1e308}},
            "maxLatencyMs",
        ),
        (
            {"model": {"preset": "llama-3.1-8b"}, "context": {"constraints": {"cpuCores": 1e-9}}},
            "cpuCores",
        ),
        ({"model": {"parametersBillion": 8, "layers": 10**12}}, "model.layers"),
    ],
)
def test_the_operator_refuses_what_the_crd_refuses(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field.split(".")[-1]):
        InferenceThresholdsSpec.model_validate(spec)


def test_contradicting_values_are_warnings_not_errors() -> None:
    spec = InferenceThresholdsSpec.model_validate(
        {
            "model": {"preset": "llama-3.1-8b"},
            "overrides": {"maxLatencyMs": 100},
            "context": {
                "overrides": {"maxTimeToFirstTokenMs": 500, "maxMemoryUsageMb": 9000},
                "constraints": {"memoryMiB": 8192},
            },
        }
    )
    first, second = spec.warnings()
    assert "maxLatencyMs (100) is below maxTimeToFirstTokenMs (500)" in first
    assert "maxMemoryUsageMb (9000) exceeds context.constraints.memoryMiB (8192)" in second
    assert InferenceThresholdsSpec.model_validate({"model": {"preset": "x"}}).warnings() == []
