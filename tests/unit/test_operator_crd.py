"""The CRD file is generated from the pydantic models and must not drift from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from inference_thresholds.api.crd import (
    InferenceThresholdsSpec,
    MatchExpression,
    SelectorOperator,
)
from inference_thresholds.api.crdgen import CRD_FILE, crd, render

CRD_PATH = Path(__file__).parents[2] / "crds" / CRD_FILE


def _schema() -> dict[str, Any]:
    version = crd()["spec"]["versions"][0]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        found += _walk(sub, f"{path}.{name}")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_checked_in_crd_matches_the_models() -> None:
    assert CRD_PATH.read_text() == render(), (
        "crds/ drifted from the pydantic models; regenerate with "
        f"`python -m inference_thresholds.api.crdgen > crds/{CRD_FILE}`"
    )


def test_schema_is_structural() -> None:
    forbidden = {"$ref", "anyOf", "allOf", "oneOf", "title", "$defs", "const"}
    for path, node in _walk(_schema()):
        assert not forbidden & node.keys(), f"{path}: {forbidden & node.keys()}"
        if path.count(".") > 1 or path in (".spec", ".status"):
            assert "type" in node, f"{path} has no type"
        assert node.get("additionalProperties") is not False, path


def test_every_spec_and_status_field_is_described() -> None:
    for path, node in _walk(_schema()):
        if path.startswith((".spec", ".status")) and not path.endswith(("[]", "{}")):
            assert node.get("description"), f"{path} has no description (kubectl explain)"


def test_cross_field_rules_and_names() -> None:
    schema = _schema()
    spec = schema["properties"]["spec"]["properties"]
    model_rules = [r["rule"] for r in spec["model"]["x-kubernetes-validations"]]
    assert any("parametersBillion" in r and "preset" in r for r in model_rules)
    expr = spec["nodeSelector"]["properties"]["matchExpressions"]["items"]
    assert expr["properties"]["operator"]["enum"] == [
        "In",
        "NotIn",
        "Exists",
        "DoesNotExist",
        "Gt",
        "Lt",
    ]
    rules = [r["rule"] for r in expr["x-kubernetes-validations"]]
    assert "values" in rules[0] and any("'Gt', 'Lt'" in r and "matches" in r for r in rules)
    assert spec["configMap"]["properties"]["envPrefix"]["default"] == "BITNET_"
    assert spec["adaptation"]["properties"]["enabled"]["default"] is False
    names = crd()["spec"]["names"]
    assert names["shortNames"] == ["ith"] and names["kind"] == "InferenceThresholds"
    columns = [c["name"] for c in crd()["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Min Tok/s", "Max TTFT", "Max Mem", "Nodes", "Ready", "Age"]
    assert crd()["spec"]["versions"][0]["subresources"] == {"status": {}}
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_minimums_and_exclusive_minimums_are_openapi_v3() -> None:
    spec = _schema()["properties"]["spec"]["properties"]
    params = spec["model"]["properties"]["parametersBillion"]
    assert params["minimum"] == 0 and params["exclusiveMinimum"] is True
    prompt = spec["context"]["properties"]["workload"]["properties"]["promptTokens"]
    assert prompt["minimum"] == 1 and prompt["default"] == 512


@pytest.mark.parametrize(
    ("operator", "values", "ok"),
    [
        ("In", ["a"], True),
        ("In", None, False),
        ("In", [], False),
        ("NotIn", ["a"], True),
        ("Exists", None, True),
        ("Exists", ["a"], False),
        ("DoesNotExist", ["a"], False),
        ("Gt", ["7"], True),
        ("Lt", ["0"], True),
        ("Gt", ["9223372036854775807"], True),
        ("Gt", ["9223372036854775808"], False),  # past int64, as strconv.ParseInt says
        ("Gt", ["0009"], True),
        ("Gt", None, False),
        ("Gt", ["1", "2"], False),
        ("Lt", ["2.5"], False),
        ("Lt", ["ten"], False),
    ],
)
def test_match_expression_rule_mirrors_cel(
    operator: str, values: list[str] | None, ok: bool
) -> None:
    data: dict[str, Any] = {"key": "pool", "operator": operator}
    if values is not None:
        data["values"] = values
    if ok:
        assert MatchExpression.model_validate(data).operator == SelectorOperator(operator)
    else:
        with pytest.raises(ValidationError, match="values"):
            MatchExpression.model_validate(data)


def test_model_needs_preset_or_parameters() -> None:
    with pytest.raises(ValidationError, match=r"(?s)model.*preset.*or parametersBillion"):
        InferenceThresholdsSpec.model_validate({"model": {"name": "x"}})


def test_top_level_overrides_win_over_context_overrides() -> None:
    spec = InferenceThresholdsSpec.model_validate(
        {
            "model": {"preset": "llama-3.1-8b"},
            "context": {"overrides": {"minTokensPerSecond": 5, "maxLatencyMs": 900}},
            "overrides": {"minTokensPerSecond": 7},
        }
    )
    merged = spec.effective_context().overrides
    assert merged.min_tokens_per_second == 7
    assert merged.max_latency_ms == 900
    assert spec.config_map_name("demo") == "demo-thresholds"


def test_crd_file_is_valid_yaml_for_kubectl() -> None:
    doc = yaml.safe_load(CRD_PATH.read_text())
    assert doc["metadata"]["name"] == "inferencethresholds.thresholds.inference.dev"
