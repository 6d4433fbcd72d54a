"""The narrow read interface detection goes through.

Every file the agent reads is addressed as an absolute host path (``/proc/cpuinfo``)
and resolved under a root directory, so the same code reads the live machine
(``root="/"``), a host filesystem mounted into the agent's pod (``/host``), or a
recorded snapshot under ``tests/fixtures/hosts/<name>/``.
"""

from __future__ import annotations

import os
from pathlib import Path


class HostFiles:
    """Read-only access to a host's /proc and /sys under ``root``; missing means None."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def read_text(self, host_path: str) -> str | None:
        """The file's text, or None when it is absent or unreadable (common in containers)."""
        try:
            return self.path(host_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None

    def read_bytes(self, host_path: str) -> bytes | None:
        try:
            return self.path(host_path).read_bytes()
        except OSError:
            return None

    def read_first_line(self, host_path: str) -> str | None:
        text = self.read_text(host_path)
        if text is None:
            return None
        stripped = text.strip()
        return stripped.splitlines()[0].strip() if stripped else ""

    def read_int(self, host_path: str) -> int | None:
        line = self.read_first_line(host_path)
        if not line:
            return None
        try:
            return int(line, 0) if line.startswith("0x") else int(line)
        except ValueError:
            return None

    def list_dir(self, host_path: str) -> list[str]:
        """Entry names, sorted for deterministic output; [] when absent."""
        try:
            return sorted(os.listdir(self.path(host_path)))
        except OSError:
            return []

    def is_dir(self, host_path: str) -> bool:
        return self.path(host_path).is_dir()

    def exists(self, host_path: str) -> bool:
        return self.path(host_path).exists()


def parse_cpu_list(text: str | None) -> set[int] | None:
    """Kernel CPU list syntax (``0-3,8,10-11``) -> CPU numbers; None when unparsable."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return set()
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = part.split("-", 1)
                cpus.update(range(int(low), int(high) + 1))
            elif part:
                cpus.add(int(part))
    except ValueError:
        return None
    return cpus
