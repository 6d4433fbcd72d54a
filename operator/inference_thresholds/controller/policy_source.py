"""The engine policy, reloaded when its file changes.

Mounted ConfigMap files are swapped by symlink (``..data``), so we compare the stat
of the resolved file (inode, size, mtime) rather than waiting for inotify events that
a symlink swap may not deliver. A broken new file keeps the last good policy.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from ..engine import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)

Stamp = tuple[int, int, int] | None


def _stamp(path: str | None) -> Stamp:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1, -1)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class PolicySource:
    def __init__(self, path: str | None, loader: Callable[..., Policy] = load_policy) -> None:
        self.path = path
        self._loader = loader
        self._stamp = _stamp(path)
        self.policy: Policy = loader(path)  # a bad file at startup is a startup error
        self.last_error: str | None = None
        self.generation = 1

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new policy is now in effect."""
        stamp = _stamp(self.path)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            policy = self._loader(self.path)
        except PolicyError as exc:
            self.last_error = str(exc)
            log.error("policy not reloaded, keeping the previous one: %s", exc)
            return False
        self.last_error = None
        if policy == self.policy:
            return False
        self.policy = policy
        self.generation += 1
        log.info("policy reloaded from %s", self.path)
        return True

    def describe(self) -> dict[str, Any]:
        return {"path": self.path, "generation": self.generation, "lastError": self.last_error}
