"""llama-server as a local process on loopback: start, wait until ready, measure, stop.

The load generator only needs the base URL this prints; a pod on a real node serves the
same API, so everything downstream is process-agnostic.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


class ServerError(RuntimeError):
    """llama-server did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A port the kernel just handed out on loopback (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerOptions:
    threads: int
    ctx_size: int = 2048
    parallel: int = 1
    extra_args: Sequence[str] = field(default_factory=tuple)
    # CPU weight of the server against the machine's other work, as a Guaranteed pod's
    # CPU request gives it: a nice decrement (needs CAP_SYS_NICE; ignored without it).
    priority: int = 0

    def argv(self, binary: Path, model: Path, port: int) -> list[str]:
        return [
            str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
            "-t", str(self.threads), "-tb", str(self.threads), "-c", str(self.ctx_size),
            "-np", str(self.parallel), "--metrics", "--no-webui",
            # No prompt cache across requests: every request pays its whole prefill.
            "--cache-ram", "0",
            *self.extra_args,
        ]  # fmt: skip


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def peak_rss_mib(self) -> float | None:
        """The server's peak resident memory (VmHWM), from /proc while it runs."""
        try:
            text = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def runqueue_wait_seconds(self) -> float | None:
        """Time the server's threads spent runnable but waiting for a CPU, so far.

        From /proc/PID/task/*/schedstat (second field, ns): the direct measure of other
        work holding the cores the server wanted; ~0 on a node that gives it its cores.
        """
        total = 0
        try:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return total / 1e9

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


_CAP_SYS_NICE = 23


def can_raise_priority() -> bool:
    """Whether processes started here may lower their nice value (CAP_SYS_NICE)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_NICE & 1)
    except (OSError, ValueError, IndexError):
        pass
    return os.geteuid() == 0


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: SIGTERM this child when the process that started it dies (a killed test
    run must not leave servers behind)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def raise_priority(priority: int) -> Callable[[], None]:
    def apply() -> None:
        _die_with_parent()
        # Without CAP_SYS_NICE the server runs at the default weight.
        with contextlib.suppress(OSError):
            os.nice(-priority)

    return apply


def _wait_ready(server: RunningServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ServerError(
                f"llama-server exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        try:
            with urllib.request.urlopen(f"{server.base_url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass  # loading (503) or not listening yet
        time.sleep(0.2)
    raise ServerError(f"llama-server not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


def stop(server: RunningServer, grace_s: float = 10) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def llama_server(
    tools: Path,
    model: Path,
    options: ServerOptions,
    log_dir: Path,
    *,
    ready_timeout_s: float = 180,
    attempts: int = 3,
) -> Iterator[RunningServer]:
    """A llama-server on a free loopback port, stopped on exit."""
    log_dir.mkdir(parents=True, exist_ok=True)
    last: ServerError | None = None
    for attempt in range(attempts):
        port = free_port()
        log = log_dir / f"llama-server-{port}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                options.argv(tools / "llama-server", model, port),
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=raise_priority(options.priority),
            )
        server = RunningServer(f"http://127.0.0.1:{port}", process, log)
        try:
            _wait_ready(server, ready_timeout_s)
        except ServerError as exc:
            stop(server)
            last = exc
            # Another process may have taken the port between our probe and the bind.
            if "bind" in str(exc).lower() and attempt + 1 < attempts:
                continue
            raise
        try:
            yield server
        finally:
            stop(server)
        return
    assert last is not None
    raise last
