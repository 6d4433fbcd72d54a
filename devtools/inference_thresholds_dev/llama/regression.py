"""Real regressions to induce on purpose: competing CPU load on the server's cores.

Nothing is simulated: the hogs are processes that spin on the CPU, so the server really
gets less CPU time, exactly what a noisy neighbour on a shared node does to it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from .server import raise_priority

_SPIN = "while True:\n    pass\n"


@contextmanager
def cpu_hogs(count: int, priority: int = 0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` busy-looping processes for the duration of the block, then stopped.

    ``priority`` is the nice decrement to give them: the server's own, so that they
    compete with it on equal terms (a neighbour with the same CPU weight).
    """
    if not 1 <= count <= 256:
        raise ValueError(f"count must be 1..256, got {count}")
    hogs = [
        subprocess.Popen(
            [sys.executable, "-c", _SPIN],
            stdin=subprocess.DEVNULL,
            preexec_fn=raise_priority(priority),
        )
        for _ in range(count)
    ]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()
