"""``operator check``: is the installation healthy? (the chart's ``helm test`` runs it).

Three checks, each printing one ``ok:`` or ``FAIL:`` line:
- the CRD is installed, Established, serves our version and holds the schema this build
  generates (Helm never upgrades CRDs from a chart's ``crds/``: a stale CRD prunes the
  new fields silently);
- the operator Deployment is rolled out (its pod passed kopf's liveness probe);
- the operator's ``/metrics`` answers and exports ``inference_thresholds_build_info`` of
  this version.
The pure parts take plain dicts, so unit tests run them without a cluster.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from .. import __version__
from ..api.crdgen import crd as generated_crd

CRD_NAME = "inferencethresholds.thresholds.inference.dev"
METRICS_LIMIT = 4 * 2**20  # bytes of /metrics read at most


def crd_problems(installed: Mapping[str, Any] | None) -> list[str]:
    """What is wrong with the installed CRD compared with this build's; [] when fine."""
    if installed is None:
        return [f"CRD {CRD_NAME} is not installed: kubectl apply --server-side -f crds/"]
    problems = []
    conditions = (installed.get("status") or {}).get("conditions") or []
    if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions):
        problems.append(f"CRD {CRD_NAME} is not Established")
    want = generated_crd()["spec"]["versions"][0]
    have = next(
        (
            v
            for v in (installed.get("spec") or {}).get("versions") or []
            if v.get("name") == want["name"]
        ),
        None,
    )
    if have is None or not have.get("served"):
        problems.append(f"CRD {CRD_NAME} does not serve {want['name']}")
    elif have.get("schema") != want["schema"]:
        problems.append(
            f"CRD {CRD_NAME} is not the one this operator ({__version__}) was built with: "
            "Helm does not upgrade CRDs; kubectl apply --server-side -f crds/"
        )
    return problems


def deployment_problems(deployment: Mapping[str, Any] | None, name: str) -> list[str]:
    if deployment is None:
        return [f"Deployment {name} not found"]
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    if (deployment.get("spec") or {}).get("replicas") == 0:
        namespace, _, short = name.partition("/")
        return [
            f"Deployment {name} is scaled to 0 replicas: no operator runs "
            f"(kubectl scale deployment {short} -n {namespace} --replicas=1)"
        ]
    if status.get("observedGeneration", 0) < meta.get("generation", 0):
        return [f"Deployment {name}: the new generation is not rolled out yet"]
    if not status.get("availableReplicas"):
        return [f"Deployment {name}: no available replica (see its pod's events and logs)"]
    return []


_BUILD_INFO = re.compile(r"^inference_thresholds_build_info\{(?P<labels>[^}]*)\} 1(\.0)?$", re.M)


def metrics_problems(text: str) -> list[str]:
    found = _BUILD_INFO.search(text)
    if found is None:
        return ["/metrics does not export inference_thresholds_build_info: not our operator?"]
    if f'version="{__version__}"' not in found.group("labels"):
        return [
            f"operator runs another version ({found.group('labels')}), this check is {__version__}"
        ]
    return []


def fetch_metrics(
    url: str,
    timeout: float = 10.0,
    *,
    wait: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[str | None, str]:
    """(body, "") or (None, why). A refused connection is tried again every second for up
    to ``wait`` seconds (nothing listens yet); any other failure is final at once."""
    deadline = clock() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return resp.read(METRICS_LIMIT).decode(errors="replace"), ""
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, ConnectionRefusedError) or clock() >= deadline:
                return None, f"{url}: {reason}"
        sleep(1.0)


def run_checks(
    *,
    kubeconfig: str | None,
    crd: bool,
    deployment: str | None,
    metrics_url: str | None,
    metrics_wait: float = 0.0,
) -> list[tuple[str, list[str]]]:
    """(check name, problems) for each requested check.

    ``metrics_wait``: a rolled-out operator pod may still be listing Nodes or taking the
    Lease (its /healthz answers from the start, its /metrics once it leads), and
    `helm install --wait && helm test` lands in that gap: a refused connection is tried
    again for this long, unless the Deployment was found broken."""
    results: list[tuple[str, list[str]]] = []
    api: Any = None
    if crd or deployment:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from ..controller.kube import make_api_client

        api = make_api_client(kubeconfig)

        def get(call: Any, *args: str) -> Any:
            try:
                return api.sanitize_for_serialization(call(*args, _request_timeout=10))
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        if crd:
            ext = client.ApiextensionsV1Api(api)
            results.append(
                ("crd", crd_problems(get(ext.read_custom_resource_definition, CRD_NAME)))
            )
        if deployment:
            namespace, _, name = deployment.partition("/")
            apps = client.AppsV1Api(api)
            found = get(apps.read_namespaced_deployment, name, namespace)
            results.append(("deployment", deployment_problems(found, deployment)))
    if metrics_url:
        # Waiting is for a rollout in progress, not for a Deployment found broken.
        rolled_out = all(not problems for name, problems in results if name == "deployment")
        body, why = fetch_metrics(metrics_url, wait=metrics_wait if rolled_out else 0.0)
        results.append(("metrics", [why] if body is None else metrics_problems(body)))
    if api is not None:
        api.close()
    return results
