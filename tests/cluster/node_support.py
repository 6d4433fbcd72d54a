"""The real node for the ``node`` tests: one per session (``real_node`` in conftest.py).

A private cluster (its own control plane, kube-scheduler, containerd + runc, kubelet)
with the project's operator and node-agent images imported. Tests install the chart on
it with ``chart_values()``; further images (an inference server, say) come in through
``import_image``. Everything is awaited by polling with deadlines.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.cluster import LocalCluster
from inference_thresholds_dev.images.build import BuiltImage, ImageSpec, build_image
from inference_thresholds_dev.local_chart import chart_values
from inference_thresholds_dev.node.node import RealNode


@dataclass
class RealNodeCluster:
    cluster: LocalCluster
    kube: ClusterAccess
    images: dict[str, BuiltImage]
    # Seconds: "images" (build or cache hit), the cluster's own timings, "import".
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def node(self) -> RealNode:
        assert self.cluster.node is not None
        return self.cluster.node

    @property
    def node_name(self) -> str:
        return self.node.name

    def chart_values(self, **overrides: Any) -> dict[str, Any]:
        """Helm values for this node (see local_chart), merged with ``overrides``."""
        return _merge(chart_values(self.cluster.server, self.images), overrides)

    def import_image(self, spec: ImageSpec) -> BuiltImage:
        """Build (or reuse) an image from a Dockerfile + context and import it here."""
        image = build_image(spec)
        if image.ref not in self.node.images():
            self.node.import_image(image.archive)
        return image

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.kube.kubectl(*args, input=input).stdout

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.kubectl("get", *args, "-o", "json"))
        return result

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("pods", "-n", namespace, "-l", selector)["items"]
        return items

    def ready_pod(self, namespace: str, selector: str, *, timeout: float = 120) -> dict[str, Any]:
        """The one Running, Ready pod matching ``selector`` (awaited; fails on two)."""

        def check() -> dict[str, Any] | None:
            live = [p for p in self.pods(namespace, selector) if not p["metadata"].get(
                "deletionTimestamp")]  # fmt: skip
            ready = [p for p in live if pod_ready(p)]
            return ready[0] if len(ready) == 1 and len(live) == 1 else None

        return self.kube.eventually(
            check, timeout=timeout, interval=0.5, what=f"one Ready pod {namespace}/{selector}"
        )

    def await_phase(self, namespace: str, pod: str, *phases: str, timeout: float = 120) -> str:
        """The pod's phase once it is one of ``phases`` (awaited)."""

        def check() -> str | None:
            phase = self.get("pod", pod, "-n", namespace)["status"].get("phase")
            return str(phase) if phase in phases else None

        return self.kube.eventually(
            check, timeout=timeout, interval=0.5, what=f"pod {namespace}/{pod} {'|'.join(phases)}"
        )

    def logs(self, namespace: str, pod: str, container: str | None = None) -> str:
        args = ["logs", "-n", namespace, pod]
        if container:
            args += ["-c", container]
        return self.kubectl(*args)

    def node_labels(self) -> dict[str, str]:
        labels: dict[str, str] = self.get("node", self.node_name)["metadata"].get("labels", {})
        return labels


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return pod.get("status", {}).get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def scrape(port: int, path: str = "/metrics") -> str:
    """GET a host-network pod's endpoint on 127.0.0.1 (where the local values bind it)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
        return str(resp.read().decode())


def metric(text: str, name: str, /, **labels: str) -> float | None:
    """One sample's value from Prometheus text, or None when absent."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    key = f"{name}{{{want}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    return None
