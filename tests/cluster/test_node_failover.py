"""Leader election on the real node: the chart's operator pod holds the Lease; its process
killed with SIGKILL is restarted by the kubelet, takes the Lease back at once (same pod,
same identity) and serves a spec change within 15 s, rewriting nothing that was right.

On this one-node cluster the operator runs with hostNetwork (no CNI), so a second replica
cannot sit beside the first (same host ports): the standby takeover between two pods is
covered by tests/cluster/test_operator_failover.py on the real apiserver.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helm_support import CHART, Helm, make_helm
from node_support import RealNodeCluster

pytestmark = [pytest.mark.node, pytest.mark.helm]

OPERATOR = "app.kubernetes.io/component=operator"
TAKEOVER_S = 15.0


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return make_helm(tmp_path_factory)


@pytest.fixture(scope="module")
def release(real_node: RealNodeCluster, helm: Helm) -> Iterator[tuple[str, str]]:
    """(release namespace, workload namespace) with the chart installed."""
    ns, workload = f"fo-{uuid.uuid4().hex[:6]}", f"fo-work-{uuid.uuid4().hex[:6]}"
    real_node.kubectl("create", "namespace", workload)
    values = helm.values_file(real_node.chart_values())
    run = ["upgrade", "--install", "fo", str(CHART), "-n", ns, "--create-namespace"]
    helm.run(*run, "-f", str(values), "--wait", "--timeout=240s",
             kubeconfig=real_node.kube.kubeconfig)  # fmt: skip
    try:
        yield ns, workload
    finally:
        helm.run("uninstall", "fo", "-n", ns, "--wait", kubeconfig=real_node.kube.kubeconfig,
                 check=False)  # fmt: skip
        real_node.kubectl("delete", "namespace", ns, workload, "--wait=false")


def _operator_pids(pod_uid: str) -> list[int]:
    """Host PIDs of the operator in this pod (its cgroup path names the pod's UID)."""
    marks = (pod_uid, pod_uid.replace("-", "_"))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(m in cgroup for m in marks) and "operator run" in cmdline:
            found.append(int(entry.name))
    return found


def _lease(node: RealNodeCluster, ns: str) -> dict[str, Any]:
    spec: dict[str, Any] = node.get("lease", "fo-inference-thresholds-operator", "-n", ns)["spec"]
    return spec


def _generation(node: RealNodeCluster, ns: str, cm: str) -> int:
    found = node.kube.kubectl("get", "configmap", cm, "-n", ns, "-o", "json", check=False)
    if found.returncode != 0:
        return 0
    doc = json.loads(json.loads(found.stdout)["data"]["thresholds.json"])
    return int(doc.get("generation") or 0)


def _versions(node: RealNodeCluster, ns: str) -> dict[str, str]:
    out = {
        f"cr/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
        for i in node.get("ith", "-n", ns)["items"]
    }
    for cm in node.get("configmaps", "-n", ns)["items"]:
        out[f"cm/{cm['metadata']['name']}"] = cm["metadata"]["resourceVersion"]
    out["events"] = str(len(node.get("events", "-n", ns)["items"]))
    return out


def test_killed_operator_is_restarted_and_takes_its_lease_back(
    real_node: RealNodeCluster, release: tuple[str, str]
) -> None:
    ns, workload = release
    node = real_node
    pod = node.ready_pod(ns, OPERATOR)
    root = Path(__file__).resolve().parents[2]
    cr = yaml.safe_load((root / "examples" / "bitnet-edge-cpu.yaml").read_text())
    cr["metadata"]["namespace"] = workload
    cr["spec"]["nodeSelector"] = {"matchLabels": {"kubernetes.io/hostname": node.node_name}}
    node.kubectl("apply", "-f", "-", input=yaml.safe_dump(cr))
    cm = cr["spec"].get("configMap", {}).get("name") or f"{cr['metadata']['name']}-thresholds"
    node.kube.eventually(
        lambda: _generation(node, workload, cm) >= 1, timeout=120, what="the first ConfigMap"
    )
    holder = _lease(node, ns)
    assert holder["holderIdentity"] == pod["metadata"]["name"]
    settled = node.kube.eventually(
        lambda: (s := _versions(node, workload)) == _versions(node, workload) and s,
        what="settled",
    )

    (pid,) = _operator_pids(pod["metadata"]["uid"])
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # as an OOM kill: no cleanup, no release
    change = json.dumps({"spec": {"context": {"workload": {"outputTokens": 99}}}})
    node.kubectl(
        "patch", "ith", cr["metadata"]["name"], "-n", workload, "--type=merge", "-p", change
    )
    node.kube.eventually(
        lambda: _generation(node, workload, cm) >= 2,
        timeout=60,
        interval=0.1,
        what="the restarted operator serving the change",
    )
    takeover = time.monotonic() - killed
    assert takeover < TAKEOVER_S, f"kill -9 -> change served took {takeover:.1f} s"

    restarted = node.ready_pod(ns, OPERATOR)
    assert restarted["metadata"]["name"] == pod["metadata"]["name"]  # same pod, new container
    assert restarted["status"]["containerStatuses"][0]["restartCount"] >= 1
    assert _lease(node, ns)["holderIdentity"] == pod["metadata"]["name"]
    after = node.kube.eventually(
        lambda: (s := _versions(node, workload)) == _versions(node, workload) and s,
        what="settled after the restart",
    )
    changed = {k for k in after if after[k] != settled.get(k)}
    assert changed <= {f"cr/{cr['metadata']['name']}", f"cm/{cm}", "events"}, changed
