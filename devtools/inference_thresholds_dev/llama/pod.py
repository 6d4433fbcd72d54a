"""llama-server as a pod on the real node: its image and the manifests around it.

The image holds the cached llama-server build (``build.py``) and the shared libraries it
links beyond the C library, copied from this host (the binary was linked against them;
the base image is the same Debian suite), FROM the project's Debian base. Its tag is a
digest of that content, so a new build or a new base makes a new image.

Manifests, all for the local node (host network: it has no pod network; servers bind
127.0.0.1 on a free port): the server Pod (CPU-limited, non-root, read-only root
filesystem, the thresholds ConfigMap mounted, ``NODE_NAME`` from the downward API), the
InferenceThresholds resource describing it, and the Job that runs the client check
(``inference-thresholds check``) in the operator image with what was measured.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from inference_thresholds.api import ModelSpec

from ..images.build import ImageSpec
from ..images.podman import Podman, Progress, base_image_name, cache_root, ensure_base

SERVER_IMAGE = "llama-server"
SERVER_USER = 65532
MODEL_DIR = "/models"
THRESHOLDS_DIR = "/etc/inference-thresholds"

_DOCKERFILE = f"""\
# llama-server from the project's cached llama.cpp build (inference_thresholds_dev.llama.build)
# with the shared libraries it links, copied from the host that built it.
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}}
COPY llama-server /opt/llama/bin/llama-server
COPY lib/ /opt/llama/lib/
ENV LD_LIBRARY_PATH=/opt/llama/lib
USER {SERVER_USER}:{SERVER_USER}
ENTRYPOINT ["/opt/llama/bin/llama-server"]
"""
# Provided by the base image (glibc); everything else the binary links is copied.
_FROM_BASE = re.compile(r"^(linux-vdso|libc|libm|libdl|libpthread|librt|ld-linux)[.-]")


def linked_libraries(binary: Path) -> list[Path]:
    """The shared libraries ``binary`` loads that the base image does not provide."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        name, _, rest = line.strip().partition(" => ")
        path = rest.split(" (", 1)[0].strip()
        if path.startswith("/") and not _FROM_BASE.match(name):
            found.append(Path(path))
    return found


def server_image_spec(tools: Path) -> ImageSpec:
    """The build context (binary + libraries + Dockerfile) under the cache, as an ImageSpec.

    The context directory is named after the build directory, and rewritten whenever its
    content would differ; the image tag digests the files themselves.
    """
    context = cache_root() / "image-contexts" / f"{SERVER_IMAGE}-{tools.name}"
    lib = context / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    binary = tools / "llama-server"
    wanted = {binary: context / "llama-server"}
    wanted.update({p: lib / p.name for p in linked_libraries(binary)})
    for stale in set(lib.iterdir()) - set(wanted.values()):
        stale.unlink()
    for source, target in wanted.items():
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copy2(source.resolve(), target)
    (context / "Dockerfile").write_text(_DOCKERFILE)
    return ImageSpec(
        name=SERVER_IMAGE,
        dockerfile=context / "Dockerfile",
        context=context,
        build_args={"BASE_IMAGE": base_image_name()},
    )


def ensure_server_base(progress: Progress | None = None) -> None:
    """The Debian base the server image is built FROM (built once, like the project's)."""
    ensure_base(Podman(), progress)


def threads_for(cpu_limit_millis: int) -> int:
    """llama.cpp threads for a CPU limit: one per whole CPU (at least one)."""
    return max(1, cpu_limit_millis // 1000)


def thresholds_cr(
    name: str,
    namespace: str,
    node: str,
    model: ModelSpec,
    *,
    cpu_cores: float,
    prompt_tokens: int,
    output_tokens: int,
    adaptation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The InferenceThresholds describing the server pod: this node, this model (as read
    from its GGUF file), llama.cpp on CPU, one sequence of the load's shape, the pod's cores."""
    spec: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"kubernetes.io/hostname": node}},
        "model": {
            **model.model_dump(mode="json", by_alias=True, exclude_none=True),
            "runtime": "llama.cpp",
        },
        "context": {
            "environment": "production",
            "strictness": "standard",
            "device": "cpu",
            "workload": {
                "promptTokens": prompt_tokens,
                "outputTokens": output_tokens,
                "concurrency": 1,
            },
            "constraints": {"cpuCores": cpu_cores},
        },
        "configMap": {"name": f"{name}-thresholds"},
    }
    if adaptation is not None:
        spec["adaptation"] = adaptation
    return {
        "apiVersion": "thresholds.inference.dev/v1alpha1",
        "kind": "InferenceThresholds",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def _restricted_container() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _node_name_env() -> dict[str, Any]:
    return {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}


def _thresholds_volume(configmap: str) -> tuple[dict[str, Any], dict[str, Any]]:
    volume = {"name": "thresholds", "configMap": {"name": configmap}}
    mount = {"name": "thresholds", "mountPath": THRESHOLDS_DIR, "readOnly": True}
    return volume, mount


def server_pod(
    name: str,
    namespace: str,
    image: str,
    *,
    model: Path,
    port: int,
    cpu_millis: int,
    memory_mib: int,
    configmap: str,
    ctx_size: int = 512,
) -> dict[str, Any]:
    """The inference pod: llama-server with ``--metrics`` on 127.0.0.1:``port``."""
    threads = threads_for(cpu_millis)
    volume, mount = _thresholds_volume(configmap)
    args = [
        "-m", f"{MODEL_DIR}/{model.name}", "--host", "127.0.0.1", "--port", str(port),
        "-t", str(threads), "-tb", str(threads), "-c", str(ctx_size), "-np", "1",
        "--metrics", "--no-webui", "--cache-ram", "0",
    ]  # fmt: skip
    cpu = f"{cpu_millis}m"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "hostNetwork": True,  # the local node has no pod network
            "restartPolicy": "Always",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": SERVER_USER,
                "runAsGroup": SERVER_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "server",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "env": [_node_name_env()],
                    "ports": [{"name": "http", "containerPort": port}],
                    # Guaranteed QoS: what the engine was told (constraints.cpuCores).
                    "resources": {
                        "requests": {"cpu": cpu, "memory": f"{memory_mib}Mi"},
                        "limits": {"cpu": cpu, "memory": f"{memory_mib}Mi"},
                    },
                    # A lower CPU limit is applied in place (the regression), no restart.
                    "resizePolicy": [
                        {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                        {"resourceName": "memory", "restartPolicy": "RestartContainer"},
                    ],
                    "readinessProbe": {
                        "httpGet": {"host": "127.0.0.1", "port": port, "path": "/health"},
                        "periodSeconds": 2,
                    },
                    "securityContext": _restricted_container(),
                    "volumeMounts": [
                        mount,
                        {
                            "name": "model",
                            "mountPath": f"{MODEL_DIR}/{model.name}",
                            "readOnly": True,
                        },
                    ],
                }
            ],
            "volumes": [
                volume,
                # The model file comes from the host's cache, read-only: a production pod mounts
                # a PVC (or pulls an OCI artifact); here the file is generated on this host.
                {
                    "name": "model",
                    "hostPath": {"path": str(model), "type": "File"},
                },
            ],
        },
    }


def check_job(
    name: str,
    namespace: str,
    image: str,
    *,
    configmap: str,
    observed: dict[str, float],
) -> dict[str, Any]:
    """A Job running ``inference-thresholds check`` (operator image) on what was measured,
    with the pod's view of its thresholds: the same ConfigMap mounted and ``NODE_NAME``."""
    flags = {
        "tokens_per_second": "--observed-tps",
        "time_to_first_token_ms": "--observed-ttft-ms",
        "latency_ms": "--observed-latency-ms",
        "memory_mb": "--observed-memory-mb",
    }
    args = ["check"]
    for key, flag in flags.items():
        if observed.get(key) is not None:
            args += [flag, f"{observed[key]:.3f}"]
    volume, mount = _thresholds_volume(configmap)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "backoffLimit": 0,  # a failed check is the answer, not something to retry
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": {"labels": {"job": name}},
                "spec": {
                    "hostNetwork": True,
                    "restartPolicy": "Never",
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": SERVER_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "check",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["inference-thresholds"],
                            "args": args,
                            "env": [_node_name_env()],
                            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                            "securityContext": _restricted_container(),
                            "volumeMounts": [mount],
                        }
                    ],
                    "volumes": [volume],
                },
            },
        },
    }
