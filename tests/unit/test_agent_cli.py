"""``inference-thresholds detect`` and ``node-agent run`` argument handling."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inference_thresholds.api import HardwareProfile
from inference_thresholds.cli.main import main

HOSTS = Path(__file__).resolve().parents[1] / "fixtures" / "hosts"


def test_detect_json_on_a_fixture(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--root", str(HOSTS / "hgx-h100-mig")]) == 0
    profile = HardwareProfile.model_validate(json.loads(capsys.readouterr().out))
    assert profile.gpus[0].count == 8


def test_detect_yaml_with_notes(capsys: pytest.CaptureFixture[str]) -> None:
    root = HOSTS / "xeon-skx-pod-cgroup-v1"
    assert main(["detect", "--root", str(root), "-o", "yaml", "--notes"]) == 0
    out = capsys.readouterr()
    assert yaml.safe_load(out.out)["cpu"]["usableCores"] == 1.5
    assert "cpu.cfs_quota_us 150000 / 100000 = 1.5 cores" in out.err


def test_detect_this_machine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect"]) == 0
    profile = HardwareProfile.model_validate(json.loads(capsys.readouterr().out))
    assert profile.cpu.logical_cores and profile.memory.total_mib


@pytest.mark.parametrize("fixture", ["dgx-a100-80gb", "a100-80gb-mig-mixed", "t4-mps"])
def test_record_then_replay_gives_the_same_profile(
    fixture: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = HOSTS / fixture
    assert main(["detect", "--root", str(source), "--record", str(tmp_path / "copy")]) == 0
    original = capsys.readouterr().out
    assert main(["detect", "--root", str(tmp_path / "copy")]) == 0
    assert capsys.readouterr().out == original


def test_detect_rejects_a_missing_root(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "--root", "/nonexistent/host"]) == 2
    assert "--root /nonexistent/host: not a directory" in capsys.readouterr().err


def test_run_needs_a_node_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    assert main(["node-agent", "run", "--once"]) == 2
    assert "--node-name is required" in capsys.readouterr().err


def test_run_rejects_bad_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["node-agent", "run", "--node-name", "n", "--interval", "0"]) == 2
    assert "--interval must be positive" in capsys.readouterr().err


def test_run_reports_bad_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "kubeconfig"
    assert main(["node-agent", "run", "--node-name", "n", "--kubeconfig", str(missing)]) == 2
    assert "cannot load Kubernetes credentials" in capsys.readouterr().err


def test_detect_imports_no_kubernetes() -> None:
    code = (
        "import sys; from inference_thresholds.cli.main import main; "
        "main(['detect', '--root', sys.argv[1]]); "
        "assert 'kubernetes' not in sys.modules and 'prometheus_client' not in sys.modules"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(HOSTS / "arm-graviton3-cgroup-v2")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
