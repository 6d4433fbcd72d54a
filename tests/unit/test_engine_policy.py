"""Policy loading and threshold precedence: override > environment > policy file > computed."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.engine import PolicyError, compute, load_policy

HW = HardwareProfile.model_validate(
    {"gpus": [{"vendor": "nvidia", "product": "NVIDIA L4", "count": 1}]}
)
MODEL = ModelSpec(preset="llama-3.1-8b", weight_bits=4.5)


def test_computed_when_nothing_overrides() -> None:
    result = compute(HW, MODEL, DeploymentContext(), load_policy(None, {}), {})
    t = result.thresholds
    e = result.expected
    assert t.min_tokens_per_second == pytest.approx(e.decode_tokens_per_second * 0.55, rel=1e-2)  # type: ignore[operator]


def test_precedence_override_env_policy_computed(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "overrides:\n  minTokensPerSecond: 1.0\n  maxLatencyMs: 111\n  maxMemoryUsageMb: 999\n"
    )
    env = {"BITNET_MIN_TOKENS_PER_SECOND": "2.0", "BITNET_MAX_LATENCY_MS": "222"}
    ctx = DeploymentContext.model_validate({"overrides": {"minTokensPerSecond": 3.0}})
    result = compute(HW, MODEL, ctx, load_policy(policy_file, {}), env)
    t = result.thresholds
    assert t.min_tokens_per_second == 3.0  # explicit override wins over env and file
    assert t.max_latency_ms == 222  # env wins over the policy file
    assert t.max_memory_usage_mb == 999  # policy file wins over computed
    sources = {d.step: d.source for d in result.decisions if d.step.startswith("override.")}
    assert sources == {
        "override.min_tokens_per_second": "override",
        "override.max_latency_ms": "environment",
        "override.max_memory_usage_mb": "policy",
    }


def test_policy_file_and_env_change_factors(tmp_path: Path) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text("decodeFloor:\n  production: 0.7\n")
    assert load_policy(policy_file, {}).decode_floor["production"] == 0.7  # type: ignore[index]
    env = {"INFERENCE_THRESHOLDS_POLICY_DECODE_FLOOR__PRODUCTION": "0.8"}
    assert load_policy(policy_file, env).decode_floor["production"] == 0.8  # type: ignore[index]
    base = compute(HW, MODEL, DeploymentContext(), load_policy(None, {}))
    tight = compute(HW, MODEL, DeploymentContext(), load_policy(policy_file, {}))
    assert tight.thresholds.min_tokens_per_second > base.thresholds.min_tokens_per_second  # type: ignore[operator]


@pytest.mark.parametrize(
    ("content", "env", "message"),
    [
        ("decodeFloor:\n  production: -1\n", {}, "decodeFloor.production"),
        ("decodeFloor:\n  production: .nan\n", {}, "decodeFloor.production"),
        ("decodeFloor:\n  prod: 0.5\n", {}, "decodeFloor.prod"),
        ("cpu:\n  perCoreBandwidthGBps:\n    x86: 0\n", {}, "perCoreBandwidthGBps.x86"),
        ("ttftSlack:\n  production: 0.5\n", {}, "ttftSlack.production"),
        ("[1, 2]\n", {}, "must be a mapping"),
        ("a: [\n", {}, "not valid YAML"),
        ("", {"INFERENCE_THRESHOLDS_POLICY_NO_SUCH": "1"}, "no policy field noSuch"),
        ("", {"INFERENCE_THRESHOLDS_POLICY_DECODE_FLOOR__PRODUCTION": "fast"}, "not a number"),
    ],
)
def test_invalid_policy_names_the_field(
    tmp_path: Path, content: str, env: dict[str, str], message: str
) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(content)
    with pytest.raises(PolicyError, match=message):
        load_policy(policy_file, env)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BITNET_MIN_TOKENS_PER_SECOND", "ten", "BITNET_MIN_TOKENS_PER_SECOND"),
        ("BITNET_MAX_LATENCY_MS", "-5", "must be a finite number > 0"),
        ("BITNET_MAX_MEMORY_MB", "inf", "must be a finite number > 0"),
    ],
)
def test_invalid_env_thresholds_name_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        compute(HW, MODEL, DeploymentContext(), None, {name: value})


def test_missing_policy_file_is_reported() -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy("/nonexistent/policy.yaml", {})
