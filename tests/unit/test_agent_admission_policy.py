"""The shipped admission policy file and its loader (the CEL is exercised in
tests/cluster/test_agent_admission.py against a real apiserver)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from inference_thresholds.api.node_contract import LABEL_PREFIX
from inference_thresholds_agent.admission import POLICY_FILE, load_policy


def test_shipped_file_is_a_policy_and_its_binding() -> None:
    policy, binding = (d for d in yaml.safe_load_all(POLICY_FILE.read_text()) if d)
    assert policy["kind"] == "ValidatingAdmissionPolicy"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert policy["spec"]["failurePolicy"] == "Fail"
    prefix = next(v for v in policy["spec"]["variables"] if v["name"] == "prefix")
    assert prefix["expression"] == f"'{LABEL_PREFIX}'"  # the same prefix the labels use
    text = POLICY_FILE.read_text()
    assert "authentication.kubernetes.io/node-name" in text


def test_loader_substitutes_the_service_account_and_names() -> None:
    policy, binding = load_policy("agents", "labeller", name="test-policy")
    (condition,) = policy["spec"]["matchConditions"]
    assert "'system:serviceaccount:agents:labeller'" in condition["expression"]
    assert policy["metadata"]["name"] == binding["metadata"]["name"] == "test-policy"
    assert binding["spec"]["policyName"] == "test-policy"
    default, _ = load_policy()
    assert "inference-thresholds:inference-thresholds-node-agent" in str(default)


def test_loader_refuses_a_policy_that_names_no_agent(tmp_path: Path) -> None:
    edited = POLICY_FILE.read_text().replace("inference-thresholds-node-agent'", "someone'")
    path = tmp_path / "policy.yaml"
    path.write_text(edited)
    with pytest.raises(ValueError, match="names no agent user"):
        load_policy(path=path)
