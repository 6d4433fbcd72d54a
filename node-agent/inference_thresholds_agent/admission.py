"""The agent's ValidatingAdmissionPolicy, from node-agent/deploy/admission-policy.yaml.

The YAML is the one place the CEL lives; this loader only swaps in the service account
the policy applies to (tests and the Helm chart run the agent under other names).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

POLICY_FILE = Path(__file__).resolve().parents[1] / "deploy" / "admission-policy.yaml"
DEFAULT_NAMESPACE = "inference-thresholds"
DEFAULT_SERVICE_ACCOUNT = "inference-thresholds-node-agent"
_DEFAULT_USER = f"system:serviceaccount:{DEFAULT_NAMESPACE}:{DEFAULT_SERVICE_ACCOUNT}"


def load_policy(
    namespace: str = DEFAULT_NAMESPACE,
    service_account: str = DEFAULT_SERVICE_ACCOUNT,
    *,
    name: str | None = None,
    path: Path = POLICY_FILE,
) -> list[dict[str, Any]]:
    """[policy, binding] for the agent running as ``namespace/service_account``.

    ``name`` renames both objects (and the binding's reference) so several test
    installations can coexist in one cluster.
    """
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    policy, binding = (copy.deepcopy(d) for d in documents)
    if policy["kind"] != "ValidatingAdmissionPolicy" or binding["kind"] != (
        "ValidatingAdmissionPolicyBinding"
    ):
        raise ValueError(f"{path}: expected a policy followed by its binding")
    user = f"system:serviceaccount:{namespace}:{service_account}"
    for condition in policy["spec"]["matchConditions"]:
        if _DEFAULT_USER not in condition["expression"]:
            raise ValueError(f"{path}: matchCondition {condition['name']} names no agent user")
        condition["expression"] = condition["expression"].replace(_DEFAULT_USER, user)
    if name is not None:
        policy["metadata"]["name"] = name
        binding["metadata"]["name"] = name
        binding["spec"]["policyName"] = name
    return [policy, binding]
