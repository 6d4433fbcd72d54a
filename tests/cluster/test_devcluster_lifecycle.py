"""The local control plane's own lifecycle: no orphans, and the CLI's up/status/down.

Each test starts a second, private control plane (a few seconds each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.binaries import ENV_DIR, locate
from inference_thresholds_dev.cluster.processes import running

_HOLD_CLUSTER = """
import sys
from pathlib import Path
from inference_thresholds_dev.cluster.binaries import locate
from inference_thresholds_dev.cluster.cluster import LocalCluster
cluster = LocalCluster(Path(sys.argv[1]), locate())
cluster.start()
print("ready", flush=True)
sys.stdin.read()  # hold the cluster until killed
"""

# Not `python -m inference_thresholds_dev.cli`: that loads cli.py twice (as __main__ and
# as a package module), so subcommands would raise a CliError main() does not catch.
_RUN_CLI = "import sys; from inference_thresholds_dev.cli import main; sys.exit(main())"


@pytest.fixture
def own_binaries(request: pytest.FixtureRequest) -> dict[str, str]:
    """Environment pointing at the built control plane (skips on --existing-cluster)."""
    if request.config.getoption("--existing-cluster"):
        pytest.skip("exercises the project's own control plane")
    return {**os.environ, ENV_DIR: str(locate().directory)}


def _component_pids(state_dir: Path) -> list[int]:
    state = json.loads((state_dir / "state.json").read_text())
    return [int(p["pid"]) for p in state["processes"]]


def test_components_die_with_a_killed_parent(tmp_path: Path, own_binaries: dict[str, str]) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_CLUSTER, str(tmp_path)],
        env=own_binaries,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        pids = _component_pids(tmp_path)
        assert len(pids) == 3 and all(running(pid) for pid in pids)
        # SIGKILL: no teardown code runs; only PR_SET_PDEATHSIG can take the components down.
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        ClusterAccess.eventually(
            lambda: not any(running(pid) for pid in pids), timeout=15, what="components gone"
        )
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_cli_up_status_kubeconfig_down(tmp_path: Path, own_binaries: dict[str, str]) -> None:
    state_dir = tmp_path / "dev-cluster"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", _RUN_CLI, "dev-cluster", *args, f"--state-dir={state_dir}"],
            env=own_binaries,
            capture_output=True,
            text=True,
            check=False,
        )

    try:
        up = cli("up")
        assert up.returncode == 0, up.stderr
        kubeconfig = Path(up.stdout.strip())
        assert kubeconfig == state_dir / "kubeconfig"
        assert "(readyz " in up.stderr and "controllers " in up.stderr
        # Detached: the components outlive the CLI process that started them.
        status = cli("status")
        assert status.returncode == 0, status.stdout
        assert json.loads(status.stdout)["ready"] is True
        assert cli("kubeconfig").stdout.strip() == str(kubeconfig)
        assert (
            ClusterAccess(kubeconfig, local=True).kubectl("get", "--raw", "/readyz").stdout == "ok"
        )
        again = cli("up")
        assert again.returncode == 0 and "already running" in again.stderr
        pids = _component_pids(state_dir)
    finally:
        down = cli("down")
    assert down.returncode == 0, down.stderr
    assert not state_dir.exists()
    ClusterAccess.eventually(
        lambda: not any(running(pid) for pid in pids), timeout=15, what="components gone"
    )
    assert cli("status").returncode == 1
    missing = cli("kubeconfig")
    assert missing.returncode == 2 and "dev-cluster up" in missing.stderr


def test_reap_stale_removes_only_dead_clusters(tmp_path: Path) -> None:
    from inference_thresholds_dev.cluster.cluster import STATE_FILE, reap_stale

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    me = Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0")[0].decode()
    for name, pid, argv0 in (
        ("itn-dead", int(finished.stdout), sys.executable),
        ("itn-alive", os.getpid(), me),
    ):
        (tmp_path / name / "logs").mkdir(parents=True)
        state = {"processes": [{"name": "etcd", "pid": pid, "log": "x", "argv0": argv0}]}
        (tmp_path / name / STATE_FILE).write_text(json.dumps(state))
    (tmp_path / "itn-starting").mkdir()  # no state yet: another session is starting it
    assert reap_stale(tmp_path, "itn-") == [tmp_path / "itn-dead"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["itn-alive", "itn-starting"]
