"""The adaptation daemon: one per InferenceThresholds with ``spec.adaptation.enabled``.

Every ``interval`` it queries Prometheus (in a thread: the client is blocking), folds the
observation into the learned state and hands the new state to the reconciler, which
writes the adapted thresholds into the ConfigMap and the state into status in one go
(see ``adaptation.py``). It posts one Event per threshold move and one per change of
health. Prometheus unreachable, refused credentials or a bad query: the state records
the reason (``Adapted=False``), thresholds are held, the loop carries on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from typing import Any
from urllib.parse import quote

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..adaptation import state as adapt
from ..adaptation.prometheus import PrometheusClient, PrometheusError
from ..api.adaptation import AdaptationSpec, SecretKeyRef, parse_duration
from ..api.crd import GROUP, PLURAL, VERSION, InferenceThresholdsSpec
from . import alert_rules
from .adaptation import interval_events
from .events import post
from .kube import Kube
from .reconcile import DecisionEvent

FIRST_QUERY_DELAY = 1.0  # seconds after start, so a fresh CR reports soon


class CredentialsError(PrometheusError):
    reason = "PrometheusCredentialsMissing"


def _secret_value(kube: Kube, namespace: str, ref: SecretKeyRef, what: str) -> str:
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(ref.name)}"
    try:
        secret = kube.request("GET", path)
    except ApiException as exc:
        raise CredentialsError(
            f"{what}: Secret {namespace}/{ref.name}: HTTP {exc.status} {exc.reason}"
        ) from None
    raw = (secret.get("data") or {}).get(ref.key)
    if raw is None:
        raise CredentialsError(f"{what}: Secret {namespace}/{ref.name} has no key {ref.key!r}")
    return base64.b64decode(raw).decode().strip()


def make_client(kube: Kube, namespace: str, spec: AdaptationSpec) -> PrometheusClient:
    prom = spec.prometheus
    assert prom is not None  # validated: enabled implies prometheus
    token = ca = None
    if prom.bearer_token_secret_ref is not None:
        token = _secret_value(
            kube, namespace, prom.bearer_token_secret_ref, "prometheus.bearerTokenSecretRef"
        )
    if prom.tls.ca_secret_ref is not None:
        ca = _secret_value(kube, namespace, prom.tls.ca_secret_ref, "prometheus.tls.caSecretRef")
    return PrometheusClient(
        prom.url,
        bearer_token=token,
        ca_pem=ca,
        insecure_skip_verify=prom.tls.insecure_skip_verify,
        timeout=parse_duration(prom.timeout),
    )


def observe(kube: Kube, namespace: str, spec: AdaptationSpec) -> adapt.Observation:
    """Blocking: credentials, then the queries; every failure becomes an Observation."""
    try:
        client = make_client(kube, namespace, spec)
    except PrometheusError as exc:
        return adapt.Observation(error=exc)
    return adapt.fetch(spec, client.query_value)


def _enabled(spec: kopf.Spec, **_: Any) -> bool:
    adaptation = spec.get("adaptation") or {}
    return bool(adaptation.get("enabled") or (adaptation.get("alertRules") or {}).get("enabled"))


_RULE_EVENTS = {
    "created": ("Normal", "PrometheusRuleWritten"),
    "updated": ("Normal", "PrometheusRuleWritten"),
    "conflict": ("Warning", "PrometheusRuleConflict"),
    "unavailable": ("Warning", "PrometheusRuleUnavailable"),
    "failed": ("Warning", "PrometheusRuleFailed"),
}


class _Rules:
    """Keeps this CR's PrometheusRule in line with spec.adaptation.alertRules."""

    def __init__(self, rt: Any, namespace: str, name: str, uid: str) -> None:
        self.rt, self.namespace, self.name, self.uid = rt, namespace, name, uid
        self.last = ""  # last action, so repeated outcomes post no Events

    def _sync(self, spec: AdaptationSpec) -> tuple[str, str]:
        if not spec.alert_rules.enabled:
            maybe_ours = self.last in ("", "created", "updated", "unchanged")
            if maybe_ours and alert_rules.remove(self.rt.kube, self.namespace, self.name, self.uid):
                return "deleted", f"deleted PrometheusRule {alert_rules.rule_name(self.name)}"
            return "absent", ""
        want = alert_rules.desired(self.namespace, self.name, self.uid, spec)
        return alert_rules.sync(self.rt.kube, want)

    async def step(self, body: kopf.Body, spec: AdaptationSpec, logger: Any) -> None:
        try:
            action, message = await asyncio.to_thread(self._sync, spec)
        except ApiException as exc:
            action, message = "failed", f"PrometheusRule: HTTP {exc.status} {exc.reason}"
        if action == "deleted":
            post(body, [DecisionEvent("Normal", "PrometheusRuleDeleted", message)])
        elif action in _RULE_EVENTS and (action != self.last or action in ("created", "updated")):
            type_, reason = _RULE_EVENTS[action]
            post(body, [DecisionEvent(type_, reason, message)])
            logger.info("%s: %s", reason, message)
        self.last = action

    def remove_now(self) -> None:
        # On failure the ownerReference still lets the garbage collector remove it later.
        with contextlib.suppress(ApiException):
            alert_rules.remove(self.rt.kube, self.namespace, self.name, self.uid)


# cancellation_backoff: on a stop the loop exits itself (stopped.wait) and the finally
# block can still delete the PrometheusRule before kopf resorts to cancelling the task.
@kopf.daemon(
    GROUP,
    VERSION,
    PLURAL,
    id="adaptation",
    when=_enabled,
    cancellation_backoff=5.0,
    cancellation_timeout=10.0,
)
async def adaptation(
    body: kopf.Body,
    namespace: str | None,
    name: str,
    uid: str,
    stopped: kopf.DaemonStopped,
    memo: kopf.Memo,
    logger: Any,
    **_: Any,
) -> None:
    rt = memo["runtime"]
    namespace = namespace or "default"  # the CRD is namespaced; kopf types allow None
    key = (namespace, name)
    rules = _Rules(rt, namespace, name, uid)
    delay = FIRST_QUERY_DELAY
    try:
        while not stopped:
            await stopped.wait(delay)
            if stopped:
                break
            try:
                full = InferenceThresholdsSpec.model_validate(dict(body.get("spec") or {}))
            except ValidationError:
                delay = 5.0  # the reconciler reports the invalid spec; check again soon
                continue
            spec = full.adaptation
            delay = spec.interval_seconds
            await rules.step(body, spec, logger)
            if not spec.enabled or rt.adaptation.get(key) is None:
                continue  # alert rules only, or no state rebased yet (no feasible class)
            obs = await asyncio.to_thread(observe, rt.kube, namespace, spec)
            # Read the state only now, with no await before the write: a reconcile that
            # rebased it meanwhile is not overwritten by a stale copy.
            current = rt.adaptation.get(key)
            if current is None:
                continue
            overridden = frozenset(full.merged_overrides().model_dump(exclude_none=True))
            new, moves = adapt.advance(current, spec, obs, time.time(), overridden)
            rt.adaptation[key] = new
            events = interval_events(current, new, moves)
            post(body, events)
            for ev in events:
                logger.info("%s: %s", ev.reason, ev.message)
            rt.kick(key)
    finally:
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.FILTERS_MISMATCH:
            await asyncio.to_thread(rules.remove_now)  # both switched off: no stale alerts
