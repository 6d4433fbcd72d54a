"""``inference_thresholds_build_info`` on the operator's and the agent's registries."""

from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import generate_latest

from inference_thresholds import __version__
from inference_thresholds.controller.metrics import OperatorMetrics
from inference_thresholds_agent.agent import AgentMetrics


def test_operator_and_agent_export_build_info() -> None:
    operator = OperatorMetrics().registry
    labels = {"version": __version__, "python": platform.python_version()}
    value = operator.get_sample_value(
        "inference_thresholds_build_info", {**labels, "kopf": metadata.version("kopf")}
    )
    assert value == 1.0
    agent = AgentMetrics().registry
    assert agent.get_sample_value("inference_thresholds_build_info", labels) == 1.0
    assert b'inference_thresholds_build_info{python="' in generate_latest(agent)
