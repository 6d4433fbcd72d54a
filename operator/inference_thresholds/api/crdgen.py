"""Generate the InferenceThresholds CRD from the pydantic models.

Run ``python -m inference_thresholds.api.crdgen > crds/$(CRD_FILE)`` (see CRD_FILE).

Pydantic emits JSON Schema 2020-12; the apiserver wants a *structural* OpenAPI v3
schema: no ``$ref``, no ``anyOf`` carrying types, no ``additionalProperties: false``,
boolean ``exclusiveMinimum``. This module converts one into the other, adds the CEL
rules, defaults for nested objects (so ``kubectl get -o yaml`` shows effective
settings) and refuses to emit a field without a description.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from .crd import (
    API_VERSION,
    CEL_RULES,
    FALLBACK_DESCRIPTIONS,
    GROUP,
    KIND,
    PLURAL,
    PRINTER_COLUMNS,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    InferenceThresholdsSpec,
    InferenceThresholdsStatus,
)

Schema = dict[str, Any]
CRD_FILE = f"{PLURAL}.{GROUP}.yaml"

_DROP = {"title", "additionalProperties"}  # additionalProperties handled explicitly


class SchemaError(ValueError):
    """The pydantic schema holds something a structural schema cannot express."""


def _resolve(ref: str, defs: Schema) -> Schema:
    prefix = "#/$defs/"
    if not ref.startswith(prefix):
        raise SchemaError(f"unsupported $ref {ref}")
    target: Schema = defs[ref[len(prefix) :]]
    return target


def _unwrap(node: Schema, defs: Schema, path: str) -> Schema:
    """Inline $ref/allOf and drop the null branch of Optional[...] unions."""
    node = dict(node)
    while True:
        if "$ref" in node:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**_resolve(node["$ref"], defs), **siblings}
        elif "allOf" in node and len(node["allOf"]) == 1:
            siblings = {k: v for k, v in node.items() if k != "allOf"}
            node = {**node["allOf"][0], **siblings}
        elif "anyOf" in node:
            branches = [b for b in node["anyOf"] if b != {"type": "null"}]
            if len(branches) != 1:
                raise SchemaError(f"{path}: unions of several types are not structural")
            siblings = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**branches[0], **siblings}
        else:
            return node


def _materialise(node: Schema) -> Any:
    """The value the apiserver's defaulting would produce for an empty object."""
    out: Schema = {}
    for name, prop in (node.get("properties") or {}).items():
        if "default" in prop:
            value = prop["default"]
            out[name] = _materialise(prop) if value == {} and "properties" in prop else value
    return out


def _convert(node: Schema, defs: Schema, path: str, *, defaults: bool) -> Schema:
    node = _unwrap(node, defs, path)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "default" and value is None:
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            required = set(node.get("required", ()))
            props: Schema = {}
            for name, sub in value.items():
                child = _convert(sub, defs, f"{path}.{name}".lstrip("."), defaults=defaults)
                if "description" not in child:
                    if name not in FALLBACK_DESCRIPTIONS:
                        raise SchemaError(f"{path}.{name}: field has no description")
                    child["description"] = FALLBACK_DESCRIPTIONS[name]
                # An optional object whose fields all have defaults defaults to {}, so
                # the apiserver fills in the nested defaults and users see them.
                if (
                    defaults
                    and name not in required
                    and child.get("type") == "object"
                    and "properties" in child
                    and not child.get("required")
                    and "default" not in child
                ):
                    # Materialised: the apiserver checks a default against CEL rules
                    # before nested defaults apply, so {} alone can fail `self.enabled`.
                    child["default"] = _materialise(child)
                props[name] = child
            out["properties"] = props
        elif key == "items":
            out["items"] = _convert(value, defs, f"{path}[]", defaults=defaults)
        else:
            out[key] = value
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out["additionalProperties"] = _convert(extra, defs, f"{path}{{}}", defaults=defaults)
    if "$defs" in out:
        del out["$defs"]
    rules = CEL_RULES.get(path)
    if rules:
        out["x-kubernetes-validations"] = rules
    return out


def _section(model: type[Any], root: str, *, defaults: bool) -> Schema:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs, root, defaults=defaults)


def openapi_schema() -> Schema:
    spec = _section(InferenceThresholdsSpec, "spec", defaults=True)
    status = _section(InferenceThresholdsStatus, "status", defaults=False)
    conditions = status["properties"]["conditions"]
    conditions["x-kubernetes-list-type"] = "map"
    conditions["x-kubernetes-list-map-keys"] = ["type"]
    root: Schema = {
        "type": "object",
        "description": "Hardware-, model- and context-aware thresholds for LLM inference: the "
        "operator computes them for the selected nodes and writes a ConfigMap pods mount.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "API version of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    if CEL_RULES.get(""):
        root["x-kubernetes-validations"] = CEL_RULES[""]
    return root


def crd() -> Schema:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "inference-thresholds"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": list(SHORT_NAMES),
                "categories": ["inference"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


def render() -> str:
    header = (
        f"# Generated by `python -m inference_thresholds.api.crdgen` from the pydantic models\n"
        f"# in inference_thresholds/api/crd.py ({API_VERSION}). Do not edit by hand.\n"
    )
    return header + yaml.safe_dump(crd(), sort_keys=True, width=100)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
