"""The Helm chart on the local node: the project's images imported, the values it needs,
and a workload that consumes the thresholds (``client_deployment``).

The chart's defaults are for an ordinary cluster (restricted Pod Security, pod network,
images from a registry). The local node differs in three ways, and the values say so:
- no registry: the images built here are imported into containerd (``pullPolicy: Never``);
- no CNI and no kube-proxy: the pods use the host network and reach the apiserver at its
  loopback address (``apiServer``), not through the ``kubernetes`` Service IP; the
  namespace therefore cannot enforce ``restricted`` (host network is not allowed there);
- loopback only on a shared machine: the pods' servers bind 127.0.0.1 on free ports, and
  the probes follow them there.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .cluster.cluster import LocalCluster, free_ports
from .images.build import BuiltImage, project_images

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
VALUES_FILE = "helm-values.yaml"
_HEADER = """\
# Values for helm/inference-thresholds on the local node (written by
# inference-thresholds-dev dev-cluster up --node). See inference_thresholds_dev.local_chart:
# images imported into the node's containerd (pullPolicy Never); host-network pods that
# reach the apiserver on loopback (no CNI, no kube-proxy here), so the release namespace
# cannot enforce Pod Security "restricted"; servers bound to 127.0.0.1 on free ports.
"""


def deploy_project_images(
    cluster: LocalCluster, progress: Callable[[str], None] | None = None
) -> dict[str, BuiltImage]:
    """Build (or reuse) the operator and node-agent images; import them into the node."""
    if cluster.node is None:
        raise RuntimeError("the cluster has no node to import images into")
    images = project_images(REPOSITORY_ROOT, progress=progress)
    present = set(cluster.node.images())
    for image in images.values():
        if image.ref not in present:
            cluster.node.import_image(image.archive)
    return images


def image_values(image: BuiltImage) -> dict[str, str]:
    return {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"}


def chart_values(server: str, images: dict[str, BuiltImage]) -> dict[str, Any]:
    """Helm values for the local node (``server`` is the apiserver URL, on loopback)."""
    url = urlparse(server)
    operator_metrics, operator_liveness, agent_metrics = free_ports(3)
    return {
        "apiServer": {"host": url.hostname, "port": url.port},
        "operator": {
            "image": image_values(images["operator"]),
            "hostNetwork": True,
            "bindAddress": "127.0.0.1",
            "metrics": {"port": operator_metrics},
            "liveness": {"port": operator_liveness},
        },
        "agent": {
            "image": image_values(images["node-agent"]),
            "hostNetwork": True,
            "bindAddress": "127.0.0.1",
            "metrics": {"port": agent_metrics},
        },
    }


def write_values(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(_HEADER + yaml.safe_dump(values, sort_keys=False))
    return path


# Re-runs the client check whenever the mounted document changes. The memory figure is the
# container's own cgroup usage: a real observation (no model server runs in it).
CLIENT_SCRIPT = r"""
seen=""
while true; do
  doc=/etc/inference-thresholds/thresholds.json
  now=$(cat "$doc" 2>/dev/null | sha256sum)
  if [ -f "$doc" ] && [ "$now" != "$seen" ]; then
    seen=$now
    used=$(cat /sys/fs/cgroup/memory/memory.usage_in_bytes 2>/dev/null \
           || cat /sys/fs/cgroup/memory.current)
    echo "--- NODE_NAME=$NODE_NAME BITNET_MAX_MEMORY_MB=$BITNET_MAX_MEMORY_MB"
    inference-thresholds check --observed-memory-mb $((used / 1048576)); echo "exit status $?"
  fi
  sleep 2
done
"""


def client_deployment(name: str, namespace: str, image: str, configmap: str) -> dict[str, Any]:
    """A Deployment consuming ``configmap`` the three ways pods can (see
    examples/inference-deployment.yaml): the mounted document, ``envFrom`` (the BITNET_*
    variables) and NODE_NAME from the downward API; it logs ``inference-thresholds check``.
    Host network: this node has no pod network (inference_thresholds_dev.node)."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65532,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "client",
                            "image": image,
                            "imagePullPolicy": "Never",
                            "command": ["/bin/sh", "-c", CLIENT_SCRIPT],
                            "env": [
                                {
                                    "name": "NODE_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                                }
                            ],
                            "envFrom": [{"configMapRef": {"name": configmap}}],
                            "resources": {"limits": {"cpu": "200m", "memory": "256Mi"}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "thresholds",
                                    "mountPath": "/etc/inference-thresholds",
                                    "readOnly": True,
                                }
                            ],
                        }
                    ],
                    "volumes": [{"name": "thresholds", "configMap": {"name": configmap}}],
                },
            },
        },
    }


def host_network_pod(
    name: str, namespace: str, image: str, *, restart: str = "Always", **container: Any
) -> dict[str, Any]:
    """A bare Pod for the local node (host network: it has no pod network), non-root."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "hostNetwork": True,
            "restartPolicy": restart,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532},
            "containers": [
                {"name": "main", "image": image, "imagePullPolicy": "Never", **container}
            ],
        },
    }


def pause_image(node: dict[str, Any]) -> str:
    """The sandbox image's name from a Node object's status.images (always imported)."""
    for image in node.get("status", {}).get("images") or []:
        for name in image.get("names") or []:
            if "/pause:" in name:
                return str(name)
    raise LookupError("no pause image on the node")
