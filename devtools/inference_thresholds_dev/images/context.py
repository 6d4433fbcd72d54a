"""The files a build context sends, and a digest of them: the image cache key.

``.dockerignore`` semantics as Docker/Buildah apply them (moby's patternmatcher): patterns are
cleaned paths relative to the context root; ``*`` and ``?`` do not cross ``/``, ``**`` does;
a pattern also excludes everything below a directory it matches; ``!pattern`` re-includes;
the last matching pattern wins.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    include: bool  # True for "!pattern"


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            # "**/" matches zero or more directories; a trailing "**" anything below.
            if pattern.startswith("**/", i):
                out.append("(?:.*/)?")
                i += 3
            else:
                out.append(".*")
                i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!") or body.startswith("^"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def parse_ignore(text: str) -> list[_Pattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        if include:
            line = line[1:].strip()
        line = posixpath.normpath(line).lstrip("/")
        if line in ("", "."):
            continue
        patterns.append(_Pattern(_translate(line), include))
    return patterns


def excluded(path: str, patterns: Sequence[_Pattern]) -> bool:
    """Whether ``path`` (relative, '/'-separated) is left out of the context."""
    parents = []
    parent = posixpath.dirname(path)
    while parent:
        parents.append(parent)
        parent = posixpath.dirname(parent)
    result = False
    for pattern in patterns:
        if pattern.regex.match(path) or any(pattern.regex.match(p) for p in parents):
            result = not pattern.include
    return result


def _candidate_files(context: Path) -> Iterable[str]:
    """Files under ``context``: git's view (tracked + untracked, not git-ignored) when the
    context is in a work tree (fast: .venv and caches are never walked), else every file."""
    result = subprocess.run(
        ["git", "-C", str(context), "ls-files", "-z", "--cached", "--others",
         "--exclude-standard", "--deduplicate", "."],
        capture_output=True, check=False,
    )  # fmt: skip
    if result.returncode == 0:
        for name in result.stdout.decode().split("\0"):
            if name and (context / name).is_file():  # deleted but still in the index: skip
                yield name
        return
    for directory, _dirs, files in os.walk(context):
        rel = os.path.relpath(directory, context)
        for name in files:
            yield name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")


def context_files(context: Path, ignorefile: Path | None) -> list[str]:
    patterns = parse_ignore(ignorefile.read_text()) if ignorefile is not None else []
    return sorted(f for f in _candidate_files(context) if not excluded(f, patterns))


def context_digest(context: Path, ignorefile: Path | None, *extra: str) -> str:
    """sha256 over the context's files (names, modes, contents) and ``extra`` strings."""
    digest = hashlib.sha256()
    for item in extra:
        digest.update(item.encode() + b"\0")
    for name in context_files(context, ignorefile):
        path = context / name
        digest.update(name.encode() + b"\0")
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
