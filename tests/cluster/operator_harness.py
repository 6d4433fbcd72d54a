"""Helpers for the operator's cluster tests: the operator as a real subprocess, nodes, CRs.

The operator runs as ``inference-thresholds operator run`` (the real CLI, kopf in
standalone mode) so tests can kill and restart it like a pod. Everything is awaited by
polling with deadlines; nothing sleeps to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client
from kubernetes.client import ApiException

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.processes import terminate

REPO = Path(__file__).parents[2]
CRD_PATH = REPO / "crds" / "inferencethresholds.thresholds.inference.dev.yaml"
GROUP, VERSION, PLURAL = "thresholds.inference.dev", "v1alpha1", "inferencethresholds"
T = TypeVar("T")

A100_LABELS = {
    "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
    "nvidia.com/gpu.count": "1",
    "nvidia.com/gpu.memory": "81920",
    "nvidia.com/gpu.compute.major": "8",
    "nvidia.com/gpu.compute.minor": "0",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def eventually(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    return ClusterAccess.eventually(check, timeout=timeout, interval=0.1, what=what or "condition")


class OperatorProcess:
    """``inference-thresholds operator run`` against the test cluster, as a subprocess."""

    def __init__(
        self,
        kube: ClusterAccess,
        workdir: Path,
        *,
        policy: Path | None = None,
        namespaces: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        self.kube = kube
        self.extra_env = env or {}
        self.namespaces = namespaces
        self.kubeconfig = kubeconfig or kube.kubeconfig
        self.workdir = workdir
        self.policy = policy
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"operator-{self.starts}.log"

    def start(self, *, wait: bool = True) -> None:
        """Start it; with ``wait``, until /healthz answers 200."""
        self.starts += 1
        argv = [
            str(Path(sys.executable).parent / "inference-thresholds"),
            "operator",
            "run",
            *([f"--namespace={ns}" for ns in self.namespaces] or ["--all-namespaces"]),
            f"--kubeconfig={self.kubeconfig}",
            f"--metrics-port={self.metrics_port}",
            f"--liveness-port={self.liveness_port}",
            "--bind=127.0.0.1",
        ]
        if self.policy is not None:
            argv.append(f"--policy={self.policy}")
        env = {
            **os.environ,
            "INFERENCE_THRESHOLDS_OPERATOR_DEBOUNCE_SECONDS": "0.2",
            "INFERENCE_THRESHOLDS_OPERATOR_RETRY_SECONDS": "1",
            "INFERENCE_THRESHOLDS_OPERATOR_POLICY_POLL_SECONDS": "0.5",
            **self.extra_env,
        }
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        if wait:
            eventually(self.healthy, timeout=60, what=f"operator /healthz (log {self.log_path})")

    def healthy(self) -> bool:
        return self.healthz() == 200

    def healthz(self) -> int | None:
        """The /healthz status code, None while nothing answers."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"operator exited {self.proc.returncode}:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=5
            ) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def memory_mib(self) -> tuple[float, float]:
        """(resident now, peak resident) of the operator process, MiB (VmRSS, VmHWM)."""
        assert self.proc is not None
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.split()[0] if value.split() else "0"
        if "VmRSS" not in fields:  # a zombie: killed, not reaped yet
            raise RuntimeError(f"operator process {self.proc.pid} has exited")
        return int(fields["VmRSS"]) / 1024, int(fields["VmHWM"]) / 1024

    def health(self) -> dict[str, Any]:
        """/healthz as JSON (with leader election: role "leader" or "standby")."""
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as resp:
            found: dict[str, Any] = json.loads(resp.read())
            return found

    def kill(self) -> None:
        """SIGKILL, as when a node dies under the pod: no cleanup, no lease release."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        terminate(self.proc)
        self.proc = None

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    def metric(self, metric_name: str, /, **labels: str) -> float | None:
        """Value of one sample, or None when absent."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        key = f"{metric_name}{{{want}}}" if labels else metric_name
        for line in self.metrics().splitlines():
            if line.startswith(key + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Cluster:
    """Typed-enough wrappers over the API for the operator tests."""

    def __init__(self, kube: ClusterAccess) -> None:
        self.kube = kube
        self.api = kube.api_client()
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def close(self) -> None:
        self.api.close()

    # --- nodes ------------------------------------------------------------------------------
    def create_node(
        self,
        name: str,
        labels: dict[str, str],
        *,
        cpu: str = "16",
        memory: str = "64Gi",
        annotations: dict[str, str] | None = None,
        resources: dict[str, str] | None = None,
    ) -> None:
        """A Node object; ``resources`` adds extended resources (``nvidia.com/gpu``...)."""
        held = {"cpu": cpu, "memory": memory, "pods": "110", **(resources or {})}
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "status": {
                "capacity": held,
                "allocatable": held,
                "nodeInfo": {
                    "architecture": "amd64",
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                    "kernelVersion": "",
                    "osImage": "",
                    "containerRuntimeVersion": "",
                    "kubeletVersion": "",
                    "kubeProxyVersion": "",
                    "operatingSystem": "linux",
                },
            },
        }
        self.core.create_node(body)  # type: ignore[arg-type]  # plain dicts are accepted
        # Create may drop status on some versions; make sure it is there.
        self.core.patch_node_status(name, {"status": body["status"]})

    def label_node(self, name: str, labels: dict[str, str | None]) -> None:
        self.core.patch_node(name, {"metadata": {"labels": labels}})

    def delete_node(self, name: str) -> None:
        with contextlib.suppress(ApiException):
            self.core.delete_node(name)

    # --- CRs -----------------------------------------------------------------------------
    def create_cr(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "InferenceThresholds",
            "metadata": {"name": name},
            "spec": spec,
        }
        result: Any = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body
        )
        return dict(result)

    def get_cr(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            result: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
            return dict(result)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def cr(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.get_cr(namespace, name)
        assert found is not None, f"InferenceThresholds {namespace}/{name} missing"
        return found

    def cm(self, namespace: str, name: str) -> dict[str, Any]:
        found = self.configmap(namespace, name)
        assert found is not None, f"ConfigMap {namespace}/{name} missing"
        return found

    def patch_spec(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"spec": spec}
        )

    def delete_cr(self, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def condition(self, namespace: str, name: str, type_: str) -> dict[str, Any] | None:
        cr = self.get_cr(namespace, name) or {}
        for cond in (cr.get("status") or {}).get("conditions") or []:
            if cond.get("type") == type_:
                found: dict[str, Any] = cond
                return found
        return None

    def await_condition(
        self,
        namespace: str,
        name: str,
        type_: str = "Ready",
        status: str = "True",
        *,
        reason: str | None = None,
        generation: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            cr = self.get_cr(namespace, name)
            if cr is None:
                return None
            st = cr.get("status") or {}
            if generation is not None and st.get("observedGeneration") != generation:
                return None
            for cond in st.get("conditions") or []:
                if (
                    cond.get("type") == type_
                    and cond.get("status") == status
                    and (reason is None or cond.get("reason") == reason)
                ):
                    return cr
            return None

        return eventually(
            check,
            timeout=timeout,
            what=f"{namespace}/{name} {type_}={status}"
            + (f" ({reason})" if reason else "")
            + (f" at generation {generation}" if generation else ""),
        )

    def versions(self, ns: str) -> dict[str, str]:
        """resourceVersion of every CR and ConfigMap in the namespace, and the Event count:
        equal before and after means nothing was written."""
        out = {
            f"cr/{i['metadata']['name']}": i["metadata"]["resourceVersion"]
            for i in self.custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
        }
        for cm in self.core.list_namespaced_config_map(ns).items:
            assert cm.metadata is not None
            out[f"cm/{cm.metadata.name}"] = str(cm.metadata.resource_version)
        out["events"] = str(len(self.core.list_namespaced_event(ns).items))
        return out

    # --- ConfigMaps and Events -------------------------------------------------------------
    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            cm = self.core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self.api.sanitize_for_serialization(cm)
        return result

    def document(self, namespace: str, name: str) -> dict[str, Any]:
        cm = self.configmap(namespace, name)
        assert cm is not None, f"ConfigMap {namespace}/{name} missing"
        doc: dict[str, Any] = json.loads(cm["data"]["thresholds.json"])
        return doc

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}"
        ).items
        out: list[dict[str, Any]] = [self.api.sanitize_for_serialization(e) for e in items]
        return out

    def event_reasons(self, namespace: str, name: str) -> list[str]:
        return [e.get("reason", "") for e in self.events(namespace, name)]

    def await_event(
        self,
        namespace: str,
        name: str,
        reason: str | None,
        timeout: float = 30,
        containing: str = "",
    ) -> dict[str, Any]:
        """The first Event on the CR with this reason (any, if None) whose message has
        ``containing``."""

        def check() -> dict[str, Any] | None:
            return next(
                (
                    e
                    for e in self.events(namespace, name)
                    if reason in (None, e.get("reason")) and containing in (e.get("message") or "")
                ),
                None,
            )

        what = f"Event {reason or '(any)'} {containing!r} on {namespace}/{name}"
        return eventually(check, timeout=timeout, what=what)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def nodes(
    cluster: Cluster, specs: list[tuple[str, dict[str, str], dict[str, Any]]]
) -> Iterator[None]:
    """Create Node objects for a test and delete them afterwards."""
    created = []
    try:
        for name, labels, extra in specs:
            cluster.create_node(name, labels, **extra)
            created.append(name)
        yield
    finally:
        for name in created:
            cluster.delete_node(name)


def install_crd(kube: ClusterAccess) -> None:
    kube.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    kube.wait_crd_established("inferencethresholds.thresholds.inference.dev")
    # Discovery can lag Established by a moment; an operator starting then fails its watch.
    eventually(
        lambda: kube.kubectl("get", "ith", "-A", check=False).returncode == 0,
        timeout=30,
        what="ith served",
    )
