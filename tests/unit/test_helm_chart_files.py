"""Chart files that must stay in step with the rest of the repository (no helm needed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "inference-thresholds"
CRD_NAME = "inferencethresholds.thresholds.inference.dev.yaml"


def test_chart_crd_is_identical_to_the_generated_one() -> None:
    chart_copy = (CHART / "crds" / CRD_NAME).read_bytes()
    generated = (ROOT / "crds" / CRD_NAME).read_bytes()
    assert chart_copy == generated, (
        f"helm/inference-thresholds/crds/{CRD_NAME} differs from crds/{CRD_NAME}: "
        f"cp crds/{CRD_NAME} helm/inference-thresholds/crds/"
    )
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == [CRD_NAME]


def test_admission_policy_is_the_agents_file() -> None:
    linked = CHART / "files" / "node-agent-admission-policy.yaml"
    source = ROOT / "node-agent" / "deploy" / "admission-policy.yaml"
    assert linked.is_symlink() and linked.resolve() == source.resolve()
    kinds = [d["kind"] for d in yaml.safe_load_all(source.read_text()) if d]
    assert kinds == ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]


def test_values_schema_policy_entry_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart_values_schema.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def _schema() -> dict[str, object]:
    schema: dict[str, object] = json.loads((CHART / "values.schema.json").read_text())
    return schema


def test_default_values_satisfy_the_schema() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(_schema()).validate(values)


def test_default_policy_satisfies_the_policy_schema() -> None:
    """The built-in policy, written out in full, is valid chart input."""
    from inference_thresholds.engine.policy import Policy

    full = Policy().model_dump(mode="json", by_alias=True)
    jsonschema.Draft7Validator(_schema()).validate({"operator": {"policy": full}})


def _leaf_paths(value: object, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaf_paths(v, f"{prefix}/{k}")]
    return [prefix]


def test_every_value_is_described_by_the_schema() -> None:
    """Each key in values.yaml is a declared property (not merely allowed by a map)."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = _schema()
    definitions = schema["definitions"]
    assert isinstance(definitions, dict)

    def resolve(node: dict[str, object]) -> dict[str, object]:
        ref = node.get("$ref")
        if isinstance(ref, str):
            return resolve(definitions[ref.rsplit("/", 1)[-1]])
        return node

    for path in _leaf_paths(values):
        node = schema
        for part in path.strip("/").split("/"):
            node = resolve(node)
            properties = node.get("properties")
            if not isinstance(properties, dict) or part not in properties:
                # stringMap-typed values (labels, selectors): keys are the user's.
                assert node.get("additionalProperties") not in (None, False, True), (
                    f"{path}: '{part}' is not declared in values.schema.json"
                )
                break
            node = properties[part]


def _dockerfile(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    return [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.MULTILINE)
        if not m.group(0).lstrip().startswith("#")
    ]


def _stages(instructions: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    """Instructions by stage name (``FROM x AS name``), in file order."""
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for kind, value in instructions:
        if kind == "FROM":
            current = []
            stages[value.split()[-1] if " AS " in value.upper() else str(len(stages))] = current
        current.append((kind, value))
    return stages


@pytest.mark.parametrize(("target", "extra"), [("operator", "operator"), ("node-agent", "agent")])
def test_dockerfile_is_pinned_non_root_and_installs_the_repo(target: str, extra: str) -> None:
    instructions = _dockerfile(ROOT / "Dockerfile")
    args = dict(v.split("=", 1) for k, v in instructions if k == "ARG" and "=" in v)
    base = args["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim-\w+", base), f"unpinned base {base}"
    # Every COPY from the build context names something that exists in the repository.
    for kind, value in instructions:
        if kind == "COPY" and not value.startswith("--from"):
            for source in value.split()[:-1]:
                assert (ROOT / source).exists(), f"Dockerfile: COPY {source}: not in the repo"
    stages = _stages(instructions)
    assert list(stages)[-1] == "operator", "the operator is the default (last) target"
    # The target copies the venv of its own extra, built FROM the shared source stage.
    (venv_copy,) = [v for k, v in stages[target] if k == "COPY"]
    venv_stage = venv_copy.split()[0].removeprefix("--from=")
    runs = " ".join(v for k, v in stages[venv_stage] if k == "RUN")
    assert f"pip install '.[{extra}]'" in runs
    # The target's user is the runtime stage's (FROM runtime): numeric, non-root.
    parent = stages[target][0][1].split()[0]
    user = [v for k, v in stages[parent] + stages[target] if k == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: want a numeric non-root uid"
    # The chart's pod security context runs as this uid.
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    component = "operator" if extra == "operator" else "agent"
    assert values[component]["podSecurityContext"]["runAsUser"] == int(uid)
    entrypoint = json.loads([v for k, v in stages[parent] if k == "ENTRYPOINT"][-1])
    assert entrypoint == ["inference-thresholds"]
