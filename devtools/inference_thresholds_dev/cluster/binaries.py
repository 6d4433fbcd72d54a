"""Finding (or building) the etcd and kube binaries (and the Go module they come from).

They are built from Go modules by ``hack/controlplane/build.sh`` into a per-version cache
outside the repository; the script reuses a complete build and prints its directory last.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "INFERENCE_THRESHOLDS_CONTROLPLANE_DIR"


class BinariesError(RuntimeError):
    """The control-plane binaries are missing and cannot be built."""


@dataclass(frozen=True)
class Binaries:
    directory: Path

    @property
    def kube(self) -> Path:
        """Multi-call binary: ``kube kube-apiserver|kube-controller-manager|kube-scheduler|
        kubelet|cri-reset ...``."""
        return self.directory / "kube"

    @property
    def etcd(self) -> Path:
        return self.directory / "etcd"

    def complete(self) -> bool:
        return all(os.access(p, os.X_OK) for p in (self.kube, self.etcd))


def build_script() -> Path | None:
    """``hack/controlplane/build.sh`` of the source checkout this package runs from."""
    # devtools/inference_thresholds_dev/cluster/binaries.py -> repository root is 3 levels up.
    script = Path(__file__).resolve().parents[3] / "hack" / "controlplane" / "build.sh"
    return script if script.is_file() else None


def kube_module_dir() -> Path:
    """``hack/controlplane/kube``: the Go module the kube binary is built from."""
    script = build_script()
    if script is None:
        raise BinariesError("no hack/controlplane/ next to this installation")
    return script.parent / "kube"


def locate(*, build: bool = True) -> Binaries:
    """Binaries from ``$INFERENCE_THRESHOLDS_CONTROLPLANE_DIR``, else from build.sh.

    build.sh returns at once when the cache is complete; a cold build takes minutes and
    streams its progress to stderr.
    """
    env_dir = os.environ.get(ENV_DIR)
    if env_dir:
        found = Binaries(Path(env_dir).expanduser())
        if not found.complete():
            raise BinariesError(
                f"${ENV_DIR}={env_dir} lacks executable 'kube' and 'etcd'; "
                "unset it to build them with hack/controlplane/build.sh"
            )
        return found
    script = build_script()
    if script is None:
        raise BinariesError(
            f"no hack/controlplane/build.sh next to this installation; set ${ENV_DIR} "
            "to a directory holding the 'kube' and 'etcd' binaries"
        )
    if not build:
        raise BinariesError(f"control plane not located; run {script}")
    result = subprocess.run([str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise BinariesError(f"{script} failed with exit status {result.returncode}")
    found = Binaries(Path(lines[-1]))
    if not found.complete():
        raise BinariesError(f"{script} reported {found.directory}, which lacks kube/etcd")
    return found
