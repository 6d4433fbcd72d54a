"""The narrow read interface detection goes through.

Every file the agent reads is addressed as an absolute host path (``/proc/cpuinfo``)
and resolved under a root directory, so the same code reads the live machine
(``root="/"``), a host filesystem mounted into the agent's pod (``/host``), or a
recorded snapshot under ``tests/fixtures/hosts/<name>/``.

What is read is bounded like any outside input: a file larger than its limit counts as
unreadable (None), a number with more digits than a 64-bit counter has is no number, a
directory listing and a CPU list stop at what a machine can have.
"""

from __future__ import annotations

import os
from itertools import islice
from pathlib import Path

FILE_MAX_BYTES = 1 << 20
"""sysfs and procfs files the agent reads are a few bytes to a few KiB."""
CPUINFO_MAX_BYTES = 16 << 20
"""/proc/cpuinfo holds ~1.5 KiB per CPU: 16 MiB covers 10,000 CPUs."""
DIR_MAX_ENTRIES = 65_536
CPU_ID_MAX = 65_535
"""Linux numbers CPUs below NR_CPUS (at most 8192 today)."""
_DIGITS_MAX = 20  # 2**64 has 20 digits


class HostFiles:
    """Read-only access to a host's /proc and /sys under ``root``; missing means None."""

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def path(self, host_path: str) -> Path:
        return self.root / host_path.lstrip("/")

    def read_text(self, host_path: str, limit: int = FILE_MAX_BYTES) -> str | None:
        """The file's text, or None when it is absent, unreadable (common in containers) or
        larger than ``limit`` bytes; bytes that are not UTF-8 become U+FFFD."""
        data = self.read_bytes(host_path, limit)
        return None if data is None else data.decode("utf-8", errors="replace")

    def read_bytes(self, host_path: str, limit: int = FILE_MAX_BYTES) -> bytes | None:
        try:
            with self.path(host_path).open("rb") as f:
                data = f.read(limit + 1)
        except OSError:
            return None
        return None if len(data) > limit else data

    def read_first_line(self, host_path: str) -> str | None:
        text = self.read_text(host_path)
        if text is None:
            return None
        stripped = text.strip()
        return stripped.splitlines()[0].strip() if stripped else ""

    def read_int(self, host_path: str) -> int | None:
        line = self.read_first_line(host_path)
        if not line or len(line) > _DIGITS_MAX:
            return None
        try:
            return int(line, 0) if line.startswith("0x") else int(line)
        except ValueError:
            return None

    def list_dir(self, host_path: str) -> list[str]:
        """Entry names, sorted for deterministic output; [] when absent."""
        try:
            with os.scandir(self.path(host_path)) as entries:
                return sorted(e.name for e in islice(entries, DIR_MAX_ENTRIES))
        except OSError:
            return []

    def is_dir(self, host_path: str) -> bool:
        return self.path(host_path).is_dir()

    def exists(self, host_path: str) -> bool:
        return self.path(host_path).exists()


def parse_cpu_list(text: str | None) -> set[int] | None:
    """Kernel CPU list syntax (``0-3,8,10-11``) -> CPU numbers; None when unparsable or
    naming a CPU no kernel numbers (above ``CPU_ID_MAX``)."""
    if text is None or len(text) > FILE_MAX_BYTES:
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
                first, last = _cpu_id(low), _cpu_id(high)
                cpus.update(range(first, last + 1))
            elif part:
                cpus.add(_cpu_id(part))
    except ValueError:
        return None
    return cpus


def _cpu_id(text: str) -> int:
    if len(text.strip()) > 6:
        raise ValueError(text)
    value = int(text)
    if not 0 <= value <= CPU_ID_MAX:
        raise ValueError(text)
    return value
