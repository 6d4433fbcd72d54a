"""`make demo` stays working: run hack/demo.py end to end and check it cleans up.

It starts its own control plane (not the session's ``kube`` fixture), exactly as a
newcomer's first command would.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_end_to_end_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the demo's workdir lands here
    env.pop("KUBECONFIG", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "demo.py"), "--timeout", "120"],
        env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]
    # The agent labelled the node, the operator made the matching CRs Ready.
    assert re.search(r"hw\.inference\.dev/cpu\.usable-cores=\d+", out)
    assert "ith/bitnet-edge: Ready=True" in out
    assert "ith/mistral-pool: Ready=True" in out
    assert "NodesMatched: no node matches" in out  # the GPU example on a CPU-only Node
    # What the user is shown.
    assert "ThresholdsComputed" in out  # an Event in `kubectl describe ith`
    assert "BITNET_MIN_TOKENS_PER_SECOND" in out  # the ConfigMap
    assert "check: PASS" in out and "exit status 0" in out
    assert "check: FAIL" in out and "exit status 1" in out
    # Cleanup: operator gone, workdir (with the cluster's state) removed.
    pid = int(re.search(r"pid (\d+), log", out).group(1))  # type: ignore[union-attr]
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert list(tmp_path.iterdir()) == []
