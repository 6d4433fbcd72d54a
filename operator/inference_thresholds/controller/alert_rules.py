"""The per-CR PrometheusRule (prometheus-operator CRD), owned by the CR.

Created, updated when the generated rules change and deleted when
``spec.adaptation.alertRules`` is switched off; a same-named PrometheusRule that this
CR does not own is never touched (reported as a conflict). Without the
prometheus-operator CRDs the rule is ``unavailable``: generate a rules file with
``python -m inference_thresholds.adaptation.alerts CR.yaml`` instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from ..adaptation.alerts import prometheus_rule
from ..api.adaptation import AdaptationSpec
from .kube import Kube

API = "/apis/monitoring.coreos.com/v1"


def rule_name(cr_name: str) -> str:
    return f"{cr_name}-thresholds"


def _path(namespace: str, name: str | None = None) -> str:
    base = f"{API}/namespaces/{quote(namespace)}/prometheusrules"
    return f"{base}/{quote(name)}" if name else base


def desired(namespace: str, name: str, uid: str, spec: AdaptationSpec) -> dict[str, Any]:
    obj = prometheus_rule(namespace, name, spec, owner_uid=uid)
    obj["metadata"]["labels"] = {**spec.alert_rules.labels, **obj["metadata"]["labels"]}
    return obj


def _owned(obj: dict[str, Any], uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(r.get("uid") == uid for r in refs)


def sync(kube: Kube, want: dict[str, Any]) -> tuple[str, str]:
    """(action, message): created, updated, unchanged, conflict or unavailable."""
    meta = want["metadata"]
    ns, name, uid = meta["namespace"], meta["name"], meta["ownerReferences"][0]["uid"]
    try:
        have = kube.request("GET", _path(ns, name))
    except ApiException as exc:
        if exc.status != 404:
            raise
        try:
            kube.request("POST", _path(ns), want)
        except ApiException as post_exc:
            if post_exc.status == 404:
                return "unavailable", (
                    "the PrometheusRule CRD (monitoring.coreos.com/v1) is not installed; "
                    "install prometheus-operator or generate a rules file with "
                    "`python -m inference_thresholds.adaptation.alerts`"
                )
            raise
        return "created", f"created PrometheusRule {name}"
    if not _owned(have, uid):
        return "conflict", (
            f"PrometheusRule {name} exists and is not owned by this InferenceThresholds; "
            "left untouched (delete or rename it)"
        )
    hmeta = have.get("metadata", {})
    if (
        have.get("spec") == want["spec"]
        and (hmeta.get("labels") or {}) == meta["labels"]
        and hmeta.get("ownerReferences") == meta["ownerReferences"]
    ):
        return "unchanged", ""
    body = {**want, "metadata": {**meta, "resourceVersion": hmeta.get("resourceVersion")}}
    kube.request("PUT", _path(ns, name), body)
    return "updated", f"updated PrometheusRule {name}"


def remove(kube: Kube, namespace: str, name: str, uid: str) -> bool:
    """Delete our PrometheusRule if it exists and is ours; True when one was deleted."""
    try:
        have = kube.request("GET", _path(namespace, rule_name(name)))
    except ApiException as exc:
        # 403: the operator may not manage PrometheusRules (the chart's default,
        # operator.manageAlertRules false), so it cannot have written one to clean up.
        if exc.status in (403, 404):
            return False
        raise
    if not _owned(have, uid):
        return False
    try:
        kube.request("DELETE", _path(namespace, rule_name(name)))
    except ApiException as exc:
        if exc.status != 404:
            raise
    return True
