"""The adaptation loop: one per InferenceThresholds with adaptation or alert rules enabled.

Every ``interval`` it queries Prometheus (on ``OperatorState.adaptation_pool``, threads of
its own: a slow endpoint never holds a thread reconciles need; each request has a total
deadline, ``prometheus.py``), folds the
observation into the learned state and hands the new state to the reconcile loop, whose
planning writes the adapted thresholds into the ConfigMap and the state into status in
one go (see ``plan_adaptation.py``). It posts one Event per threshold move and one per
change of health, and keeps the CR's PrometheusRule in line. Prometheus unreachable,
refused credentials or a bad query: the state records the reason (``Adapted=False``),
thresholds are held, the loop carries on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import time
from typing import Any
from urllib.parse import quote

import kopf
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..adaptation import state as adapt
from ..adaptation.prometheus import PrometheusClient, PrometheusError
from ..api.adaptation import AdaptationSpec, AdaptationStatus, SecretKeyRef, parse_duration
from ..api.crd import InferenceThresholdsSpec
from . import alert_rules
from .events import DecisionEvent, Poster
from .kube import Kube
from .operator_state import CrKey, OperatorState
from .plan_adaptation import interval_events, overridden_fields

FIRST_QUERY_DELAY = 1.0  # seconds after start, so a fresh CR reports soon


class CredentialsError(PrometheusError):
    reason = "PrometheusCredentialsMissing"


# A bearer token is a JWT or similar (a few KiB); a CA bundle holds a few certificates.
_SECRET_MAX_BYTES = {"token": 64 * 1024, "ca": 1 << 20}
_TOKEN = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an Authorization header carries


def _secret_value(kube: Kube, namespace: str, ref: SecretKeyRef, what: str, kind: str) -> str:
    """The Secret's value as text, bounded; never echoed in an error (it is a secret)."""
    path = f"/api/v1/namespaces/{quote(namespace)}/secrets/{quote(ref.name)}"
    where = f"{what}: Secret {namespace}/{ref.name} key {ref.key!r}"
    try:
        secret = kube.request("GET", path)
    except ApiException as exc:
        raise CredentialsError(
            f"{what}: Secret {namespace}/{ref.name}: HTTP {exc.status} {exc.reason}"
        ) from None
    raw = (secret.get("data") or {}).get(ref.key)
    if raw is None:
        raise CredentialsError(f"{what}: Secret {namespace}/{ref.name} has no key {ref.key!r}")
    try:
        value = base64.b64decode(str(raw), validate=True).decode().strip()
    except (ValueError, binascii.Error):
        raise CredentialsError(f"{where} is not UTF-8 text") from None
    if len(value) > _SECRET_MAX_BYTES[kind]:
        raise CredentialsError(f"{where} is longer than {_SECRET_MAX_BYTES[kind]} bytes")
    if kind == "token" and not _TOKEN.fullmatch(value):
        raise CredentialsError(f"{where} holds characters a bearer token cannot carry")
    return value


def make_client(kube: Kube, namespace: str, spec: AdaptationSpec) -> PrometheusClient:
    prom = spec.prometheus
    assert prom is not None  # validated: enabled implies prometheus
    token = ca = None
    if prom.bearer_token_secret_ref is not None:
        token = _secret_value(
            kube,
            namespace,
            prom.bearer_token_secret_ref,
            "prometheus.bearerTokenSecretRef",
            "token",
        )
    if prom.tls.ca_secret_ref is not None:
        ca = _secret_value(
            kube, namespace, prom.tls.ca_secret_ref, "prometheus.tls.caSecretRef", "ca"
        )
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


def _observe_as_work(
    state: OperatorState, namespace: str, name: str, spec: AdaptationSpec
) -> adapt.Observation:
    """``observe`` registered as work in flight (from the pool thread, once it runs)."""
    assert spec.prometheus is not None
    # Two queries and two Secret reads at most, each with its own deadline.
    budget = 2 * parse_duration(spec.prometheus.timeout) + 2 * state.kube.timeout + 30
    with state.running(f"adaptation queries {namespace}/{name}", budget):
        return observe(state.kube, namespace, spec)


def wanted(spec: kopf.Spec, **_: Any) -> bool:
    """The loop runs while adaptation or alert rules are enabled (a kopf ``when`` filter)."""
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

    def __init__(self, kube: Kube, namespace: str, name: str, uid: str) -> None:
        self.kube, self.namespace, self.name, self.uid = kube, namespace, name, uid
        self.last = ""  # last action, so repeated outcomes post no Events

    def _sync(self, spec: AdaptationSpec) -> tuple[str, str]:
        if not spec.alert_rules.enabled:
            maybe_ours = self.last in ("", "created", "updated", "unchanged")
            if maybe_ours and alert_rules.remove(self.kube, self.namespace, self.name, self.uid):
                return "deleted", f"deleted PrometheusRule {alert_rules.rule_name(self.name)}"
            return "absent", ""
        want = alert_rules.desired(self.namespace, self.name, self.uid, spec)
        return alert_rules.sync(self.kube, want)

    async def step(self, spec: AdaptationSpec, post: Poster) -> None:
        try:
            action, message = await asyncio.to_thread(self._sync, spec)
        except ApiException as exc:
            action, message = "failed", f"PrometheusRule: HTTP {exc.status} {exc.reason}"
        if action == "deleted":
            post([DecisionEvent("Normal", "PrometheusRuleDeleted", message)])
        elif action in _RULE_EVENTS and (action != self.last or action in ("created", "updated")):
            type_, reason = _RULE_EVENTS[action]
            post([DecisionEvent(type_, reason, message)])
        self.last = action

    def remove_now(self) -> None:
        # On failure the ownerReference still lets the garbage collector remove it later.
        with contextlib.suppress(ApiException):
            alert_rules.remove(self.kube, self.namespace, self.name, self.uid)


async def run(
    state: OperatorState,
    body: kopf.Body,
    namespace: str,
    name: str,
    uid: str,
    stopped: kopf.DaemonStopped,
    post: Poster,
) -> None:
    """Query, learn and hand over the state every interval until ``stopped``."""
    key = (namespace, name)
    rules = _Rules(state.kube, namespace, name, uid)
    delay = FIRST_QUERY_DELAY
    try:
        while not stopped:
            await stopped.wait(delay)
            if stopped:
                break
            try:
                full = InferenceThresholdsSpec.model_validate(dict(body.get("spec") or {}))
            except ValidationError:
                delay = 5.0  # the reconcile reports the invalid spec; check again soon
                continue
            spec = full.adaptation
            delay = spec.interval_seconds
            await rules.step(spec, post)
            if not spec.enabled or _learned(state, key) is None:
                continue  # alert rules only, or no state rebased yet (no feasible class)
            obs = await asyncio.get_running_loop().run_in_executor(
                state.adaptation_pool, _observe_as_work, state, namespace, name, spec
            )
            # Read the state only now, with no await before the write: a reconcile that
            # rebased it meanwhile is not overwritten by a stale copy.
            cr = state.crs.get(key)
            if cr is None or cr.adaptation is None:
                continue
            current = cr.adaptation
            new, moves = adapt.advance(current, spec, obs, time.time(), overridden_fields(full))
            cr.adaptation = new
            post(interval_events(current, new, moves))
            if not cr.failing:  # a failing reconcile picks the state up at its retry
                cr.trigger.set()
    finally:
        reason = stopped.reason
        if reason is not None and reason & kopf.DaemonStoppingReason.FILTERS_MISMATCH:
            await asyncio.to_thread(rules.remove_now)  # both switched off: no stale alerts


def _learned(state: OperatorState, key: CrKey) -> AdaptationStatus | None:
    cr = state.crs.get(key)
    return cr.adaptation if cr is not None else None
