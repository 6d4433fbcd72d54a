"""podman with its own storage under the project's cache, and the Debian base image.

No registry is reachable here, so every image starts from a base made of Debian packages
(``mmdebstrap``, ~1-2 min once) imported into podman. podman runs with cgroupfs and runc
(no systemd; crun fails on a cgroup v1 hybrid host) and keeps its storage, run and tmp
directories in the cache, not in /var/lib/containers or /run/libpod.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

Progress = Callable[[str], None]

# The base every project image builds FROM (the Dockerfiles take it as PYTHON_IMAGE):
# Debian bookworm's Python 3.11, `python` on PATH, the venv module, CA certificates.
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
MIRROR_ENV = "INFERENCE_THRESHOLDS_DEBIAN_MIRROR"
_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# Documentation and translations are not needed in an image (copyright files stay).
_DPKG_EXCLUDES = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)
# bookworm's merged /usr without the usrmerge package (which pulls in perl: +46 MB).
_MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")


class ImageBuildError(RuntimeError):
    """An image could not be built; the message names the step and its output."""


def cache_root() -> Path:
    explicit = os.environ.get("INFERENCE_THRESHOLDS_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
        "inference-thresholds"
    )


def _require(command: str, package: str) -> str:
    found = shutil.which(command)
    if found is None:
        raise ImageBuildError(f"{command} not found; install the Debian package {package}")
    return found


class Podman:
    """``podman`` with private storage under ``directory`` (default: the cache)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or cache_root() / "podman"
        self.binary = _require("podman", "podman")
        # podman refuses a run root longer than 50 characters.
        self.runroot = self.directory / "run"
        if len(str(self.runroot)) > 50:
            self.runroot = Path(f"/run/inference-thresholds-podman-{os.getuid()}")

    def argv(self, *args: str) -> list[str]:
        d = self.directory
        return [
            self.binary,
            f"--root={d / 'storage'}",
            f"--runroot={self.runroot}",
            f"--tmpdir={d / 'tmp'}",
            "--storage-driver=overlay",
            "--cgroup-manager=cgroupfs",
            "--runtime=runc",
            "--events-backend=file",
            *args,
        ]

    def run(
        self, *args: str, what: str, stream: Progress | None = None, timeout: float = 1800
    ) -> str:
        """Run podman; stdout. Output lines go to ``stream`` (build logs) when given."""
        command = self.argv(*args)
        if stream is None:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
            if result.returncode != 0:
                raise ImageBuildError(f"{what} failed:\n{result.stderr.strip()[-3000:]}")
            return result.stdout
        return _stream(command, what=what, stream=stream, timeout=timeout)

    def exists(self, image: str) -> bool:
        command = self.argv("image", "exists", image)
        return subprocess.run(command, capture_output=True, check=False).returncode == 0


def _stream(command: Sequence[str], *, what: str, stream: Progress, timeout: float) -> str:
    """Run ``command``, passing each output line to ``stream``; raise with the tail."""
    tail: list[str] = []
    with subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-40:], line]
            stream(line)
        code = proc.wait(timeout=timeout)
    if code != 0:
        joined = "\n".join(tail)
        raise ImageBuildError(f"{what} failed (exit {code}):\n{joined}")
    return "\n".join(tail)


def base_mirrors() -> list[str]:
    main = os.environ.get(MIRROR_ENV, "http://deb.debian.org/debian")
    return [
        f"deb {main} {BASE_SUITE} main",
        f"deb {main} {BASE_SUITE}-updates main",
        f"deb {_SECURITY_MIRROR} {BASE_SUITE}-security main",
    ]


def base_image_name() -> str:
    """``localhost/inference-thresholds/base:bookworm-<hash of what goes in>``."""
    spec = {
        "suite": BASE_SUITE,
        "packages": BASE_PACKAGES,
        "mirrors": base_mirrors(),
        "dpkg": _DPKG_EXCLUDES,
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    return f"localhost/inference-thresholds/base:{BASE_SUITE}-{key}"


def ensure_base(podman: Podman, progress: Progress | None = None) -> str:
    """The base image's name, built with mmdebstrap and imported unless podman has it."""
    name = base_image_name()
    if podman.exists(name):
        return name
    mmdebstrap = _require("mmdebstrap", "mmdebstrap")
    say = progress or (lambda _m: None)
    say(f"building {name} from Debian packages (mmdebstrap; a minute or two, once)")
    podman.directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=podman.directory, prefix="base-") as work:
        tar = Path(work) / "base.tar"
        command = [
            mmdebstrap,
            "--variant=minbase",
            "--mode=root",
            f"--include={','.join(BASE_PACKAGES)}",
            *(f"--dpkgopt={opt}" for opt in _DPKG_EXCLUDES),
        ]
        if _MERGED_USR_HOOK.is_dir():
            command.append(f"--hook-dir={_MERGED_USR_HOOK}")
        command += [BASE_SUITE, str(tar), *base_mirrors()]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ImageBuildError(f"mmdebstrap failed:\n{result.stderr.strip()[-3000:]}")
        # The environment the public python images set (a tarball import has none).
        podman.run(
            "import",
            "--change=ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change=ENV LANG=C.UTF-8",
            '--change=CMD ["python3"]',
            str(tar),
            name,
            what=f"podman import of {name}",
        )
    return name
