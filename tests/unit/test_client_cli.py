"""``inference-thresholds check``: exit codes and output for probes and CI jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_fixtures import two_class_document, write_configmap_volume

from inference_thresholds.cli.main import main


@pytest.fixture
def mounted(tmp_path: Path) -> Path:
    return write_configmap_volume(tmp_path / "mnt", two_class_document())


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in list(os.environ):
        if var.startswith(("BITNET_", "INFERENCE_THRESHOLDS_")) or var == "NODE_NAME":
            monkeypatch.delenv(var)


def test_pass_exits_zero(mounted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "--path",
            str(mounted),
            "--node",
            "n-small",
            "--observed-tps",
            "12.5",
            "--observed-ttft-ms",
            "800",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("inference-thresholds check: PASS (2 checked, 0 failed)")
    assert "node n-small is in class cpu-small" in out


def test_fail_exits_one_with_reason(mounted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "--path",
            str(mounted),
            "--node",
            "n-big-1",
            "--observed-tps",
            "12.5",
            "--observed-ttft-ms",
            "800",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out
    assert "decode throughput 12.5 tok/s is below the minimum 21 tok/s" in out


def test_node_from_env(mounted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "n-big-2")
    monkeypatch.setenv("INFERENCE_THRESHOLDS_PATH", str(mounted))
    assert main(["check", "--observed-tps", "12.5"]) == 1
    monkeypatch.setenv("NODE_NAME", "n-small")
    assert main(["check", "--observed-tps", "12.5"]) == 0


def test_json_output(mounted: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "check",
            "--path",
            str(mounted),
            "--node",
            "n-big-1",
            "--observed-tps",
            "25",
            "--observed-memory-mb",
            "3000",
            "-o",
            "json",
        ]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["passed"] is False
    failing = [r for r in data["report"]["results"] if r["status"] == "fail"]
    assert [r["threshold"] for r in failing] == ["max_memory_usage_mb"]
    assert data["thresholds"]["className"] == "cpu-big"
    assert data["thresholds"]["sources"]["min_tokens_per_second"]["kind"] == "class"


def test_infeasible_node_fails(mounted: Path) -> None:
    assert main(["check", "--path", str(mounted), "--node", "n-tiny", "--observed-tps", "9"]) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check"], "no observed metric given"),
        (["check", "--observed-speedup", "3"], "nothing was checked"),
    ],
)
def test_usage_problems_exit_two(
    mounted: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # speedup has no threshold in the small class: nothing to compare is a usage error
    code = main([*argv, "--path", str(mounted), "--node", "n-small"])
    captured = capsys.readouterr()
    assert code == 2
    assert message in captured.out + captured.err


def test_bad_env_variable_exits_two(
    mounted: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BITNET_MAX_MEMORY_MB", "lots")
    assert main(["check", "--path", str(mounted), "--observed-tps", "12"]) == 2
    assert "BITNET_MAX_MEMORY_MB='lots' is not a number" in capsys.readouterr().err


def test_missing_document_exits_two(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--path", str(tmp_path), "--observed-tps", "12"]) == 2
    assert "INFERENCE_THRESHOLDS_PATH" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-1", "fast"])
def test_bad_flag_value_exits_two(value: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["check", "--observed-tps", value])
    assert exc.value.code == 2


def test_console_script_exit_status(mounted: Path) -> None:
    """The installed entry point, as a probe would run it."""
    exe = Path(sys.executable).parent / "inference-thresholds"
    env = {"PATH": os.environ.get("PATH", ""), "NODE_NAME": "n-big-1"}
    ok = subprocess.run(
        [str(exe), "check", "--path", str(mounted), "--observed-tps", "30"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    bad = subprocess.run(
        [str(exe), "check", "--path", str(mounted), "--observed-tps", "3"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (ok.returncode, bad.returncode) == (0, 1), ok.stderr + bad.stderr
