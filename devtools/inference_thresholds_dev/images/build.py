"""Images built from a Dockerfile and a context, cached as OCI archives by content.

``build_image`` is the reusable piece (the project's images use it, and so can an
inference-server image later): the cache key is a digest of the build context as the
ignore file trims it, the Dockerfile, the target and the build arguments (which name the
base image, itself keyed by its inputs). A hit costs nothing; a miss runs ``podman build``
and ``podman save --format oci-archive``. A node imports the archive into its containerd
(``ctr images import``); pods use the image with ``imagePullPolicy: Never``.
"""

from __future__ import annotations

import os
import ssl
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .context import context_digest
from .podman import Podman, Progress, cache_root, ensure_base

REPOSITORY_PREFIX = "localhost/inference-thresholds/"
# Archives kept per image name (newest first by mtime, touched on use): a few branches or
# edits can each find theirs; older ones are deleted so the cache stays bounded (~0.3 GB
# per operator or node-agent archive).
_KEEP_ARCHIVES = 3


@dataclass(frozen=True)
class ImageSpec:
    """What to build: ``podman build -f dockerfile [--target] [--build-arg ...] context``."""

    name: str  # short name: the repository is REPOSITORY_PREFIX + name
    dockerfile: Path
    context: Path
    target: str | None = None
    ignorefile: Path | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    # The build may download (pip from PyPI): host network plus the host's CA bundle.
    network: bool = False

    @property
    def repository(self) -> str:
        return REPOSITORY_PREFIX + self.name


@dataclass(frozen=True)
class BuiltImage:
    name: str
    repository: str
    tag: str
    archive: Path
    cached: bool  # True when the archive was already there
    seconds: float = 0.0

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def archive_dir() -> Path:
    return cache_root() / "images"


def image_tag(spec: ImageSpec) -> str:
    extra = [spec.dockerfile.read_text(), f"target={spec.target}"]
    extra += [f"{k}={v}" for k, v in sorted(spec.build_args.items())]
    return context_digest(spec.context, spec.ignorefile, *extra)[:16]


def _host_ca_bundle() -> Path | None:
    """The CA bundle the host's Python/pip trust (a TLS-intercepting proxy's CA included)."""
    for variable in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        value = os.environ.get(variable)
        if value and Path(value).is_file():
            return Path(value)
    default = ssl.get_default_verify_paths().cafile
    return Path(default) if default and Path(default).is_file() else None


def _network_args(workdir: Path) -> list[str]:
    """Host network for RUN steps, and the host's CA bundle + index settings for pip.

    Mounted for the build only (nothing is written into a layer), so a machine behind a
    TLS-inspecting proxy builds the same Dockerfile a user with direct access builds.
    """
    args = ["--network=host"]
    lines = ["[global]"]
    bundle = _host_ca_bundle()
    if bundle is not None:
        args.append(f"--volume={bundle}:/etc/ssl/certs/host-ca-bundle.crt:ro")
        lines.append("cert = /etc/ssl/certs/host-ca-bundle.crt")
    for variable, key in (
        ("PIP_INDEX_URL", "index-url"),
        ("PIP_EXTRA_INDEX_URL", "extra-index-url"),
    ):
        if os.environ.get(variable):
            lines.append(f"{key} = {os.environ[variable]}")
    conf = workdir / "pip.conf"
    conf.write_text("\n".join(lines) + "\n")
    args.append(f"--volume={conf}:/etc/pip.conf:ro")
    return args


def _prune_archives(directory: Path, name: str, keep: Path) -> None:
    archives = sorted(
        directory.glob(f"{name}-*.oci.tar"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for old in [a for a in archives if a != keep][_KEEP_ARCHIVES - 1 :]:
        old.unlink(missing_ok=True)


def build_image(
    spec: ImageSpec,
    *,
    podman: Podman | None = None,
    progress: Progress | None = None,
    prepare: Callable[[], None] | None = None,
) -> BuiltImage:
    """Build ``spec`` unless its archive is cached; return where the archive is.

    ``prepare`` runs before a build (not on a cache hit), e.g. to compile into the context.
    """
    tag = image_tag(spec)
    directory = archive_dir()
    archive = directory / f"{spec.name}-{tag}.oci.tar"
    if archive.is_file():
        os.utime(archive)  # recently used: kept by _prune_archives
        return BuiltImage(spec.name, spec.repository, tag, archive, cached=True)
    podman = podman or Podman()
    say = progress or (lambda _m: None)
    ref = f"{spec.repository}:{tag}"
    say(
        f"building {ref} from {spec.dockerfile}"
        + (f" --target {spec.target}" if spec.target else "")
    )
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    if prepare is not None:
        prepare()
    # The build's RUN containers get their own cgroup parent, removed afterwards (podman's
    # default, libpod_parent, would stay on the host).
    cgroup_parent = f"inference-thresholds-build-{os.getpid()}"
    with tempfile.TemporaryDirectory(dir=directory, prefix=".build-") as work:
        command = [
            "build",
            "--layers=false",  # the archive is the cache; no intermediate images pile up
            "--pull=never",
            f"--cgroup-parent={cgroup_parent}",
            # runc's state for the RUN steps: in podman's directory, not /run/runc.
            f"--runtime-flag=root={podman.directory / 'runc'}",
            f"--file={spec.dockerfile}",
            f"--tag={ref}",
        ]
        if spec.ignorefile is not None:
            command.append(f"--ignorefile={spec.ignorefile}")
        if spec.target:
            command.append(f"--target={spec.target}")
        command += [f"--build-arg={k}={v}" for k, v in sorted(spec.build_args.items())]
        command += _network_args(Path(work)) if spec.network else ["--network=none"]

        def steps(line: str) -> None:  # the build's outline; errors carry the full tail
            if " STEP " in f" {line}" or line.startswith(("COMMIT", "Successfully tagged")):
                say(line)

        try:
            podman.run(*command, str(spec.context), what=f"podman build of {ref}", stream=steps)
        finally:
            remove_cgroup(cgroup_parent)
        partial = Path(work) / "image.oci.tar"
        # Uncompressed layers: 4x the disk, but half the save and import time (no gzip).
        podman.run(
            "save", "--format=oci-archive", "--uncompressed", f"--output={partial}", ref,
            what=f"podman save {ref}",
        )  # fmt: skip
        partial.replace(archive)  # atomic: a concurrent reader sees all or nothing
    # The archive is the cache: the image leaves podman's storage (the base stays).
    podman.run("rmi", ref, what=f"podman rmi {ref}")
    _prune_archives(directory, spec.name, archive)
    return BuiltImage(
        spec.name, spec.repository, tag, archive, cached=False,
        seconds=time.monotonic() - started,
    )  # fmt: skip


def remove_cgroup(name: str) -> None:
    """Remove ``name`` (and empty children) from every cgroup hierarchy; busy ones stay."""
    from ..node.host import remove_cgroup_tree

    remove_cgroup_tree(name)


def project_images(
    root: Path, *, podman: Podman | None = None, progress: Progress | None = None
) -> dict[str, BuiltImage]:
    """The operator and node-agent images from ``root``'s Dockerfile, FROM the Debian base."""
    podman = podman or Podman()
    base = ensure_base(podman, progress)
    built = {}
    for target in ("operator", "node-agent"):
        spec = ImageSpec(
            name=target,
            dockerfile=root / "Dockerfile",
            context=root,
            target=target,
            ignorefile=root / "Dockerfile.dockerignore",
            build_args={"PYTHON_IMAGE": base},
            network=True,
        )
        built[target] = build_image(spec, podman=podman, progress=progress)
    return built
