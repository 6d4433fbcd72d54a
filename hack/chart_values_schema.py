#!/usr/bin/env python3
"""Write the chart's values.schema.json `operator.policy` entry from the engine's Policy model.

The rest of values.schema.json is written by hand; this part is derived so that a typo or an
out-of-range number in `operator.policy` fails `helm install` instead of crash-looping the
operator. The policy is partial (merged over the defaults), so nothing is required.

    hack/chart_values_schema.py           # rewrite the entry
    hack/chart_values_schema.py --check   # exit 1 if it is out of date (tests run this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "helm" / "inference-thresholds" / "values.schema.json"
_DROP = {"title", "default", "required"}


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    """Inline $refs, drop titles/defaults/required, turn draft 2020-12 tuples into draft-07."""
    if isinstance(node, list):
        return [_convert(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    names = _convert(node["propertyNames"], defs).get("enum") if "propertyNames" in node else None
    if names and isinstance(node.get("additionalProperties"), dict):
        # A map keyed by an enum: spell the keys out, so a wrong key is reported at its
        # path ("additional properties 'prod' not allowed") rather than at the root.
        value_schema = node["additionalProperties"]
        node = {k: v for k, v in node.items() if k not in ("propertyNames", "additionalProperties")}
        node["properties"] = {name: value_schema for name in names}
        node["additionalProperties"] = False
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "prefixItems":
            out["items"] = _convert(value, defs)
            out["additionalItems"] = False
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs) for name, sub in value.items()}
            continue
        out[key] = _convert(value, defs)
    return out


def policy_schema() -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "operator"))
    from inference_thresholds.engine.policy import Policy

    raw = Policy.model_json_schema(by_alias=True)
    schema: dict[str, Any] = _convert(raw, raw.get("$defs", {}))
    schema["description"] = (
        "Engine policy, merged over the built-in defaults (`inference-thresholds policy "
        "--defaults --output yaml` prints them). Generated from the Policy model by "
        "hack/chart_values_schema.py."
    )
    return schema


def render() -> str:
    values = json.loads(SCHEMA.read_text(encoding="utf-8"))
    values["properties"]["operator"]["properties"]["policy"] = policy_schema()
    return json.dumps(values, indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if SCHEMA.read_text(encoding="utf-8") != text:
            print(f"{SCHEMA} is out of date: run hack/chart_values_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
