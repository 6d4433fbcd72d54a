"""The image cache key: the files a build context sends (.dockerignore semantics) and
their digest, which must change with what goes into the image and only with that."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from inference_thresholds_dev.images.context import (
    context_digest,
    context_files,
    excluded,
    parse_ignore,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("patterns", "path", "expected"),
    [
        ("*", "README.md", True),
        ("*", "operator/x.py", True),  # a parent directory matches
        ("*\n!operator/pkg/**", "operator/pkg/a/b.py", False),
        ("*\n!operator/pkg/**", "operator/other.py", True),
        ("*\n!operator/pkg/**\n**/__pycache__", "operator/pkg/__pycache__/a.pyc", True),
        ("**/*.pyc", "a/b/c.pyc", True),
        ("**/*.pyc", "c.pyc", True),
        ("docs/*.md", "docs/a.md", True),
        ("docs/*.md", "docs/sub/a.md", False),  # * does not cross /
        ("/build\n# comment\n", "build/x", True),
        ("a?c", "abc", True),
        ("a[!b]c", "abc", False),
        ("!keep\n*", "keep", True),  # the last matching pattern wins
    ],
)
def test_dockerignore_semantics(patterns: str, path: str, expected: bool) -> None:
    assert excluded(path, parse_ignore(patterns)) is expected


def test_the_product_context_is_the_two_packages_and_pyproject() -> None:
    """Nothing else: edits to docs, tests or devtools/ must not rebuild the images."""
    files = context_files(ROOT, ROOT / "Dockerfile.dockerignore")
    assert "pyproject.toml" in files and "README.md" not in files
    assert any(f.startswith("operator/inference_thresholds/") for f in files)
    assert any(f.startswith("node-agent/inference_thresholds_agent/") for f in files)
    outside = [
        f
        for f in files
        if f != "pyproject.toml"
        and not f.startswith(
            ("operator/inference_thresholds/", "node-agent/inference_thresholds_agent/")
        )
    ]
    assert outside == []
    assert not any("__pycache__" in f or f.startswith("devtools/") for f in files)


def _repo(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("A = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("T = 1\n")
    (tmp_path / ".dockerignore").write_text("*\n!pkg/**\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


def test_digest_follows_the_sent_files_only(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    ignore = repo / ".dockerignore"
    first = context_digest(repo, ignore, "FROM base")
    (repo / "tests" / "t.py").write_text("T = 2\n")  # not sent: same key
    assert context_digest(repo, ignore, "FROM base") == first
    (repo / "pkg" / "a.py").write_text("A = 2\n")  # sent: new key
    second = context_digest(repo, ignore, "FROM base")
    assert second != first
    (repo / "pkg" / "a.py").chmod(0o755)  # the mode is part of what is copied
    assert context_digest(repo, ignore, "FROM base") != second
    assert context_digest(repo, ignore, "FROM other") != context_digest(repo, ignore, "FROM base")


def test_digest_outside_git_walks_every_file(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "pause").write_bytes(b"\x7fELF")
    assert context_files(tmp_path, None) == ["Dockerfile", "pause"]
