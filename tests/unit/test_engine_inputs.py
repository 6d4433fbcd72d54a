"""Bad engine inputs fail with a message naming the field and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inference_thresholds.api import DeploymentContext, HardwareProfile, ModelSpec
from inference_thresholds.engine.inputs import InputError, load, parse


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (HardwareProfile, {"memory": {"bandwidthGBs": 100}}, "memory.bandwidthGBs"),
        (HardwareProfile, {"memory": {"bandwidthGBps": -1}}, "memory.bandwidthGBps"),
        (HardwareProfile, {"memory": {"bandwidthGBps": float("nan")}}, "memory.bandwidthGBps"),
        (HardwareProfile, {"cpu": {"usableCores": 0}}, "cpu.usableCores"),
        (HardwareProfile, {"gpus": [{"vendor": "nvidia"}]}, "gpus.0.product"),
        (
            HardwareProfile,
            {"gpus": [{"vendor": "nvidia", "product": "x", "computeCapability": "eight"}]},
            "gpus.0.computeCapability",
        ),
        (ModelSpec, {"weightBits": 0.5}, "weightBits"),
        (ModelSpec, {"runtime": "ollama"}, "runtime"),
        (ModelSpec, {"parametersBillion": "many"}, "parametersBillion"),
        (DeploymentContext, {"environment": "prod"}, "environment"),
        (DeploymentContext, {"workload": {"concurrency": 0}}, "workload.concurrency"),
        (DeploymentContext, {"overrides": {"maxLatencyMs": -3}}, "overrides.maxLatencyMs"),
    ],
)
def test_errors_name_the_field(model: type, data: object, field: str) -> None:
    with pytest.raises(InputError, match="input\\.yaml: " + re.escape(field) + ":"):
        parse(model, data, "input.yaml")


def test_unknown_field_hint_mentions_units() -> None:
    with pytest.raises(InputError, match="unit suffix"):
        parse(HardwareProfile, {"memory": {"totalMB": 1}}, "hw.yaml")


def test_files(tmp_path: Path) -> None:
    good = tmp_path / "hw.json"
    good.write_text('{"cpu": {"physicalCores": 8}}')
    assert load(HardwareProfile, good).cpu.physical_cores == 8
    bad = tmp_path / "bad.yaml"
    bad.write_text("cpu: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load(HardwareProfile, bad)
    with pytest.raises(InputError, match="cannot read"):
        load(HardwareProfile, tmp_path / "missing.yaml")
