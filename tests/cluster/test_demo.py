"""`make demo` stays working: run hack/demo.py end to end and check it cleans up.

It starts its own cluster (not the session's fixtures), exactly as a newcomer's first
command would: with a real node where containers can run, and the no-node fallback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helm_support import helm_path

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """The demo's TMPDIR: short, since the node's unix sockets live below it."""
    path = Path(tempfile.mkdtemp(prefix="itd-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _demo(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the demo's workdir lands here
    env.pop("KUBECONFIG", None)
    # helm as `make demo` finds it (the pinned one, last on PATH).
    env["PATH"] = f"{env.get('PATH', '')}{os.pathsep}{Path(helm_path()).parent}"
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "demo.py"), "--timeout", "180", *args],
        env=env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-4000:]
    return out


def _assert_cleaned_up(tmp_path: Path) -> None:
    """The workdir (cluster state) is gone and no process runs from it."""
    assert list(tmp_path.iterdir()) == []
    running = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(tmp_path).encode() in cmdline:
                running.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    assert running == []


def _assert_shown_to_the_user(out: str) -> None:
    assert re.search(r"hw\.inference\.dev/cpu\.usable-cores=\d+", out)
    assert "ith/bitnet-edge: Ready=True" in out
    assert "ith/mistral-pool: Ready=True" in out
    assert "NodesMatched: no node matches" in out  # the GPU example on a CPU-only Node
    assert "ThresholdsComputed" in out  # an Event in `kubectl describe ith`
    assert "BITNET_MIN_TOKENS_PER_SECOND" in out  # the ConfigMap
    assert "check: PASS" in out and "exit status 0" in out


@pytest.mark.node
def test_demo_on_a_real_node(short_tmp: Path) -> None:
    if os.geteuid() != 0 or not shutil.which("containerd"):
        pytest.skip("the real-node demo needs root and containerd (the fallback runs instead)")
    out = _demo(short_tmp)
    assert "no real node" not in out
    assert "STATUS: deployed" in out  # helm install
    for component in ("operator", "node-agent"):  # the chart's pods, Running and Ready
        assert re.search(rf"inference-thresholds-{component}-\S+\s+1/1\s+Running", out), component
    assert "ok: crd" in out and "ok: deployment" in out and "ok: metrics" in out  # helm test
    assert "The agent pod detected this machine" in out
    # A workload pod's logs: its node, the legacy variables, the mounted document.
    assert "NODE_NAME=localhost BITNET_MAX_MEMORY_MB=" in out
    assert "(default/bitnet-edge, generation 1)" in out
    _assert_shown_to_the_user(out)
    _assert_cleaned_up(short_tmp)


def test_demo_fallback_without_a_node_says_so(tmp_path: Path) -> None:
    out = _demo(tmp_path, "--no-node")
    assert "note: no real node in this demo (--no-node given)" in out
    assert "Running the node agent once" in out
    _assert_shown_to_the_user(out)
    _assert_cleaned_up(tmp_path)
