"""Operator configuration: defaults, environment, CLI flags on top; clear errors."""

from __future__ import annotations

import pytest

from inference_thresholds.cli.main import build_parser
from inference_thresholds.controller.settings import OperatorConfig


def test_environment_then_flags() -> None:
    env = {
        "INFERENCE_THRESHOLDS_OPERATOR_NAMESPACES": "a, b",
        "INFERENCE_THRESHOLDS_OPERATOR_METRICS_PORT": "off",
        "INFERENCE_THRESHOLDS_OPERATOR_DEBOUNCE_SECONDS": "2",
        "INFERENCE_THRESHOLDS_OPERATOR_POLICY": "/etc/policy.yaml",
    }
    config = OperatorConfig.from_env(env)
    assert config.namespaces == ("a", "b")
    assert config.metrics_port is None and config.liveness_port == 8081
    assert config.debounce_seconds == 2.0 and config.policy_path == "/etc/policy.yaml"
    flagged = config.with_overrides(namespaces=(), metrics_port=9100, policy_path=None)
    assert flagged.namespaces == () and flagged.metrics_port == 9100
    assert flagged.policy_path == "/etc/policy.yaml", "an absent flag keeps the env value"
    assert flagged.liveness_endpoint == "http://0.0.0.0:8081/healthz"


def test_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ValueError, match="INFERENCE_THRESHOLDS_OPERATOR_RESYNC_SECONDS"):
        OperatorConfig.from_env({"INFERENCE_THRESHOLDS_OPERATOR_RESYNC_SECONDS": "soon"})


def test_cli_parses_operator_run() -> None:
    args = build_parser().parse_args(
        ["operator", "run", "-n", "x", "-n", "y", "--policy", "p.yaml", "--metrics-port", "0"]
    )
    assert args.namespace == ["x", "y"] and args.policy == "p.yaml" and args.metrics_port == 0
    with pytest.raises(SystemExit):
        build_parser().parse_args(["operator", "run", "-n", "x", "--all-namespaces"])


def test_operator_crd_command_prints_the_crd(capsys: pytest.CaptureFixture[str]) -> None:
    from inference_thresholds.cli.main import main

    assert main(["operator", "crd"]) == 0
    assert "kind: CustomResourceDefinition" in capsys.readouterr().out


def test_default_prometheus_url_from_env_or_flag_is_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference_thresholds.cli.main import main

    env = {"INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL": "http://prom.monitoring.svc:9090"}
    assert OperatorConfig.from_env(env).prometheus_url == "http://prom.monitoring.svc:9090"
    assert OperatorConfig.from_env({}).prometheus_url is None
    with pytest.raises(ValueError, match="INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL"):
        OperatorConfig.from_env({"INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL": "prom:9090"})
    monkeypatch.delenv("INFERENCE_THRESHOLDS_OPERATOR_PROMETHEUS_URL", raising=False)
    assert main(["operator", "run", "--prometheus-url", "prom:9090"]) == 2
    assert "--prometheus-url='prom:9090': expected an http(s) URL" in capsys.readouterr().err


def test_no_diff_base_is_kept_only_while_every_handler_is_an_event_handler() -> None:
    """kopf's diff base (a deep copy of each body per watch event) feeds change handlers
    only; the operator skips building it. A change, create, update, resume or delete
    handler added later would get empty diffs: this fails first."""
    import kopf

    from inference_thresholds.controller import handlers  # noqa: F401  (registers them)
    from inference_thresholds.controller.settings import apply_kopf_settings

    registry = kopf.get_default_registry()
    assert list(registry._changing.get_all_handlers()) == []
    assert list(registry._spawning.get_all_handlers()) == []  # daemons and timers
    assert len(list(registry._watching.get_all_handlers())) == 2
    settings = kopf.OperatorSettings()
    apply_kopf_settings(settings)
    body = kopf.Body({"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"big": "x" * 100}})
    assert settings.persistence.diffbase_storage.build(body=body) == {}
