"""The real node's costs: image builds, node start, pod Ready, the chart, memory.

Figures (seconds unless noted), each next to a peer measured in the same run:
- images: the operator + node-agent images when cached (the usual case) and, with
  ``--cold``, built from nothing (Debian base by mmdebstrap, both Dockerfile targets) in a
  throwaway cache;
- cluster start: control plane only (peer) vs control plane + real node (node Ready), and
  the import of both images into the node's fresh containerd;
- pod Ready: a pause pod (peer) vs ``helm install --wait`` of the chart (both pods Ready
  through their probes), and ``helm install`` -> the first ConfigMap of a CR applied as
  soon as the CRD exists;
- RSS (MiB) of the kubelet and containerd with the chart running, next to the apiserver's.

    .venv/bin/python benchmarks/node_start.py [--runs N] [--cold]

Needs root, containerd, runc, podman, mmdebstrap (hack/ensure-deps.sh) and helm
(hack/get-helm.sh). Exits 1 if the node fails to come up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.binaries import locate
from inference_thresholds_dev.cluster.cluster import LocalCluster
from inference_thresholds_dev.images.build import project_images
from inference_thresholds_dev.local_chart import (
    REPOSITORY_ROOT,
    chart_values,
    deploy_project_images,
    host_network_pod,
    pause_image,
)

CHART = REPOSITORY_ROOT / "helm" / "inference-thresholds"
CRD = "inferencethresholds.thresholds.inference.dev"
EXAMPLE = REPOSITORY_ROOT / "examples" / "bitnet-edge-cpu.yaml"


def say(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def timed(run: Callable[[], Any]) -> float:
    began = time.monotonic()
    run()
    return time.monotonic() - began


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def helm_binary() -> str:
    script = REPOSITORY_ROOT / "hack" / "get-helm.sh"
    out = subprocess.run([str(script), "helm"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def cold_images() -> float:
    """Both images from nothing, in a throwaway cache (the shared one is untouched)."""
    with tempfile.TemporaryDirectory(prefix="it-cold-") as cache:
        env = {**os.environ, "INFERENCE_THRESHOLDS_CACHE": cache}
        code = (
            "from inference_thresholds_dev.images.build import project_images;"
            "from inference_thresholds_dev.local_chart import REPOSITORY_ROOT;"
            "project_images(REPOSITORY_ROOT)"
        )
        began = time.monotonic()
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        return time.monotonic() - began


def one_run(helm: str, images: dict[str, Any]) -> dict[str, float]:
    figures: dict[str, float] = {}
    binaries = locate()
    with tempfile.TemporaryDirectory(prefix="itb-", dir="/tmp") as tmp:
        peer = LocalCluster(Path(tmp) / "cp", binaries)
        try:
            peer.start()
            figures["control plane only: controllers running"] = peer.timings["controllers"]
        finally:
            peer.stop()
        cluster = LocalCluster(Path(tmp) / "n", binaries, node=True)
        try:
            cluster.start(timeout=180)
            figures["control plane + node: node Ready"] = cluster.timings["node-ready"]
            figures["import both images into the node"] = timed(
                lambda: deploy_project_images(cluster)
            )
            kube = ClusterAccess(cluster.kubeconfig, local=True)
            figures.update(_pods(kube, helm, cluster, images))
            assert cluster.node is not None
            pids = {p.name: p.pid for p in cluster.processes}
            for name in ("kubelet", "containerd", "kube-apiserver"):
                figures[f"RSS MiB {name}"] = rss_mib(pids[name])
        finally:
            problems = cluster.stop()
            if problems:
                raise RuntimeError(f"teardown left {problems}")
    return figures


def _pods(
    kube: ClusterAccess, helm: str, cluster: LocalCluster, images: dict[str, Any]
) -> dict[str, float]:
    figures: dict[str, float] = {}
    node = json.loads(kube.kubectl("get", "node", "localhost", "-o", "json").stdout)
    pod = host_network_pod("pause", "default", pause_image(node))
    figures["pause pod: apply -> Ready"] = timed(
        lambda: (
            kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(pod)),
            kube.kubectl("wait", "--for=condition=Ready", "pod/pause", "--timeout=120s"),
        )
    )
    values = Path(cluster.state_dir) / "values.yaml"
    values.write_text(yaml.safe_dump(chart_values(cluster.server, images)))
    argv = [helm, "install", "inference-thresholds", str(CHART), "-n", "inference-thresholds",
            "--create-namespace", "-f", str(values), "--wait", "--timeout=300s",
            f"--kubeconfig={cluster.kubeconfig}"]  # fmt: skip
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HELM_CACHE_HOME": home, "HELM_CONFIG_HOME": home,
               "HELM_DATA_HOME": home}  # fmt: skip
        install = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        kube.eventually(
            lambda: kube.kubectl("get", "crd", CRD, check=False).returncode == 0,
            timeout=120, interval=0.1, what="CRD",
        )  # fmt: skip
        kube.wait_crd_established(CRD)
        cr = yaml.safe_load(EXAMPLE.read_text())
        cr["spec"]["nodeSelector"] = {"matchLabels": {"kubernetes.io/hostname": "localhost"}}
        kube.kubectl("apply", "-f", "-", input=yaml.safe_dump(cr))
        kube.eventually(
            lambda: kube.kubectl("get", "cm", "bitnet-edge-thresholds", check=False).returncode
            == 0,
            timeout=300, interval=0.1, what="ConfigMap",
        )  # fmt: skip
        figures["helm install -> first ConfigMap"] = time.monotonic() - began
        if install.wait(timeout=300) != 0:
            raise RuntimeError("helm install failed")
        figures["helm install --wait (both pods Ready)"] = time.monotonic() - began
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="also time a cold image build")
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("containerd") is None:
        print("needs root and containerd (hack/ensure-deps.sh)", file=sys.stderr)
        return 1
    helm = helm_binary()
    rows: dict[str, list[float]] = {}
    if args.cold:
        say("cold image build (throwaway cache; minutes)")
        rows["images: cold build (base + operator + node-agent)"] = [cold_images()]
    say("images (cached)")
    began = time.monotonic()
    images = project_images(REPOSITORY_ROOT, progress=say)
    rows["images: cache hit (both)"] = [time.monotonic() - began]
    for run in range(args.runs):
        say(f"run {run + 1}/{args.runs}")
        for key, value in one_run(helm, images).items():
            rows.setdefault(key, []).append(value)
    width = max(len(k) for k in rows)
    print(f"{'what':<{width}}  {'median':>8}  {'runs':>5}")
    for key, values in rows.items():
        print(f"{key:<{width}}  {statistics.median(values):8.1f}  {len(values):5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
