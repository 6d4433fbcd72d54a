"""The engine's CLI: compute, explain, backtest, policy — through main()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from inference_thresholds.cli.main import main

CALIBRATION = Path(__file__).resolve().parents[3] / "shared" / "calibration" / "measurements.yaml"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    hw = tmp_path / "hw.yaml"
    hw.write_text(yaml.safe_dump({"gpus": [{"vendor": "nvidia", "product": "NVIDIA L4"}]}))
    ctx = tmp_path / "ctx.yaml"
    ctx.write_text(yaml.safe_dump({"environment": "production", "priority": "latency"}))
    model = tmp_path / "model.yaml"
    model.write_text(yaml.safe_dump({"preset": "llama-3.1-8b", "weightBits": 4.5}))
    return {"hw": hw, "ctx": ctx, "model": model}


def test_compute_json(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "compute",
            "--hardware",
            str(inputs["hw"]),
            "--model",
            str(inputs["model"]),
            "--context",
            str(inputs["ctx"]),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["feasible"] is True
    assert out["thresholds"]["minTokensPerSecond"] > 0
    assert out["device"]["product"] == "NVIDIA L4"
    assert any(d["step"] == "decode.tokensPerSecond" for d in out["decisions"])


def test_compute_with_preset_name_and_table(
    inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "compute",
                "--hardware",
                str(inputs["hw"]),
                "--model",
                "gemma-2-2b",
                "--output",
                "table",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "tokens/s" in out and "min" in out


def test_explain_lists_sources(inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--hardware", str(inputs["hw"]), "--model", "llama-3.1-8b"]) == 0
    out = capsys.readouterr().out
    assert "[table]" in out and "[policy]" in out and "threshold.minTokensPerSecond" in out


def test_bad_input_exits_2_with_field(
    tmp_path: Path, inputs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("environment: prod\n")
    assert (
        main(
            [
                "compute",
                "--hardware",
                str(inputs["hw"]),
                "--model",
                "llama-3.1-8b",
                "--context",
                str(bad),
            ]
        )
        == 2
    )
    assert "environment" in capsys.readouterr().err
    assert main(["compute", "--hardware", str(inputs["hw"]), "--model", "no-such-model"]) == 2
    assert "model.preset" in capsys.readouterr().err


@pytest.mark.skipif(not CALIBRATION.exists(), reason="shared calibration set not beside the repo")
def test_backtest_on_calibration_meets_the_quality_bar(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", str(CALIBRATION), "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    summary = report["summary"]
    assert summary["falseAlarms"] == 0
    assert summary["medianMinTpsOverMeasured"] >= 0.5
    assert summary["expectedWithin0p5To2"] >= 0.8
    assert {"id", "expected", "thresholds", "feasible", "verdict"} <= set(report["cases"][0])


def test_backtest_flags_an_unhealthy_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = {
        "id": "numa-regression",
        "healthy": False,
        "hardware": {"gpus": [{"vendor": "nvidia", "product": "NVIDIA A100-SXM4-80GB"}]},
        "model": {"preset": "llama-2-7b", "runtime": "gpt-fast"},
        "context": {"environment": "production"},
        "measured": {"decodeTokensPerSecond": 30},
    }
    cases = tmp_path / "cases.yaml"
    cases.write_text(yaml.safe_dump([case]))
    assert main(["backtest", str(cases), "--output", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"][0]["verdict"] == "caught"


def test_policy_defaults_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "--defaults"]) == 0
    dumped = capsys.readouterr().out
    path = tmp_path / "policy.yaml"
    path.write_text(dumped)
    assert main(["policy", "--policy", str(path), "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["decodeFloor"]["production"] == 0.55
