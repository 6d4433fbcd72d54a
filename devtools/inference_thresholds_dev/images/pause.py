"""The pod sandbox ("pause") image, built here: registry.k8s.io cannot be reached.

Kubernetes' own pause.c (build/pause/linux/pause.c in the k8s.io/kubernetes module the
control plane is built from), compiled statically with upstream's flags into a ``FROM
scratch`` image like upstream's build/pause/Dockerfile.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .build import BuiltImage, ImageSpec, build_image
from .podman import ImageBuildError, Podman, Progress, cache_root

PAUSE_VERSION = "3.10.1"  # TAG in the module's build/pause/Makefile
# Upstream's CFLAGS (build/pause/Makefile), VERSION naming this build.
_CFLAGS = ("-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-inference-thresholds")
_DOCKERFILE = f"""\
# pause.c compiled with: gcc {" ".join(_CFLAGS)}
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
"""


def _go() -> str:
    found = shutil.which("go") or (
        "/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None
    )
    if found is None:
        raise ImageBuildError("go not found (needed to locate the k8s.io/kubernetes module)")
    return found


def kubernetes_module_dir(kube_module: Path) -> Path:
    """The k8s.io/kubernetes module directory (downloaded into Go's module cache if needed)."""
    go_mod = (kube_module / "go.mod").read_text()
    match = re.search(r"^\s*k8s\.io/kubernetes (v\S+)", go_mod, re.MULTILINE)
    if match is None:
        raise ImageBuildError(f"{kube_module / 'go.mod'} does not require k8s.io/kubernetes")
    result = subprocess.run(
        [_go(), "mod", "download", "-json", f"k8s.io/kubernetes@{match.group(1)}"],
        cwd=kube_module, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise ImageBuildError(f"go mod download k8s.io/kubernetes failed:\n{result.stderr}")
    return Path(json.loads(result.stdout)["Dir"])


def pause_image(
    kube_module: Path, *, podman: Podman | None = None, progress: Progress | None = None
) -> BuiltImage:
    """Build (or reuse) the pause image; ``kube_module`` is hack/controlplane/kube."""
    source = kubernetes_module_dir(kube_module) / "build" / "pause" / "linux" / "pause.c"
    if not source.is_file():
        raise ImageBuildError(f"{source} not found in the k8s.io/kubernetes module")
    gcc = shutil.which("gcc")
    if gcc is None:
        raise ImageBuildError("gcc not found; install the Debian packages gcc and libc6-dev")
    directory = cache_root() / "images"
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".pause-") as work:
        context = Path(work)
        shutil.copyfile(source, context / "pause.c")
        (context / "Dockerfile").write_text(_DOCKERFILE)
        (context / ".dockerignore").write_text("pause.c\n")
        # The key covers pause.c, the flags and the Dockerfile (not the binary, which gcc
        # does not build reproducibly); compile only on a miss.
        spec = ImageSpec(
            name="pause",
            dockerfile=context / "Dockerfile",
            context=context,
        )
        return build_image(
            spec,
            podman=podman,
            progress=progress,
            prepare=lambda: _compile(gcc, context / "pause.c", context / "pause"),
        )


def _compile(gcc: str, source: Path, binary: Path) -> None:
    result = subprocess.run(
        [gcc, *_CFLAGS, "-o", str(binary), str(source)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ImageBuildError(
            f"compiling pause.c failed (static linking needs libc6-dev):\n{result.stderr}"
        )
    os.chmod(binary, 0o755)
