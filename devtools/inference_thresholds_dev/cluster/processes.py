"""Starting and stopping control-plane processes without leaving orphans.

Every component runs in its own session (process group = its pid), so teardown can signal
the whole group. Processes started for a test session are also tied to the parent with
PR_SET_PDEATHSIG: if pytest is killed outright, the kernel kills them too (the signal follows
the *thread* that started them, so start clusters from a long-lived thread). Processes started
by ``dev-cluster up`` outlive the CLI on purpose and are found again through their pids.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _tie_to_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(126)
        # The parent may have died between fork and prctl: then no signal would come.
        if os.getppid() != parent_pid:
            os._exit(126)

    return preexec


@dataclass
class ManagedProcess:
    """A started component. ``popen`` is None when re-attached from a state file."""

    name: str
    pid: int
    log_path: Path
    argv0: str
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return _pid_runs(self.pid, self.argv0)

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def running(pid: int) -> bool:
    """True if ``pid`` is a live process (not a zombie), whatever it runs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _pid_runs(pid: int, argv0: str) -> bool:
    """True if ``pid`` is a live (not zombie) process running ``argv0``.

    Checking the command line guards against a recycled pid after a reboot or crash.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return (
        state not in ("Z", "X") and bool(cmdline) and cmdline[0].decode(errors="replace") == argv0
    )


def spawn(name: str, argv: Sequence[str], log_path: Path, *, tie_to_parent: bool) -> ManagedProcess:
    """Start ``argv`` in a new session with stdout/stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_tie_to_parent(os.getpid()) if tie_to_parent else None,
            close_fds=True,
        )
    return ManagedProcess(name=name, pid=popen.pid, log_path=log_path, argv0=argv[0], popen=popen)


def _wait_gone(proc: ManagedProcess, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if proc.popen is not None:
            try:
                proc.popen.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
                return True
            except subprocess.TimeoutExpired:
                pass
        elif not _pid_runs(proc.pid, proc.argv0):
            return True
        else:
            time.sleep(0.05)
        if time.monotonic() >= deadline:
            return False


def _signal_group(proc: ManagedProcess, sig: signal.Signals) -> None:
    # The group id equals the pid (own session); a re-attached pid is only signalled if it
    # still runs our binary.
    if proc.popen is None and not _pid_runs(proc.pid, proc.argv0):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def stop(proc: ManagedProcess, grace: float = 10.0) -> None:
    """SIGTERM the process group, wait up to ``grace`` seconds, then SIGKILL it."""
    _signal_group(proc, signal.SIGTERM)
    if not _wait_gone(proc, grace):
        _signal_group(proc, signal.SIGKILL)
        _wait_gone(proc, 5.0)


def terminate(popen: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM a child started with Popen, SIGKILL it after ``grace`` seconds; reap it."""
    popen.terminate()
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
