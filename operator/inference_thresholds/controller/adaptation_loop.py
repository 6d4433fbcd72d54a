"""The adaptation loop: one per InferenceThresholds with adaptation or alert rules enabled.

Every ``interval`` it queries Prometheus for each adapted class — first its history with a
range query, once — on ``OperatorState.adaptation_pool`` (threads of its own: a slow
endpoint never holds a thread reconciles need; each request has a total deadline,
``prometheus.py``), folds the observation into the learned state and hands the new state
to the reconcile loop, whose planning writes the learned thresholds into the ConfigMap
(mode Apply) and the state into status in one go (see ``plan_adaptation.py``). It posts
one Event per move or recommendation, one per history load and one per change of health,
and keeps the CR's PrometheusRule in line. Prometheus unreachable or not configured,
refused credentials, a bad query, metrics that do not exist: the state records the reason
(``Adapted=False``), thresholds are held, the loop carries on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ..adaptation import state as adapt
from ..adaptation.prometheus import PrometheusClient, PrometheusError
from ..api.adaptation import AdaptationSpec, SecretKeyRef, parse_duration
from ..api.crd import InferenceThresholdsSpec
from . import alert_rules
from .events import DecisionEvent, Poster
from .kube import Kube
from .operator_state import CrState, OperatorState
from .plan_adaptation import interval_events, overridden_fields
from .stopper import Stopper, StopReason

FIRST_QUERY_DELAY = 1.0  # seconds after start, so a fresh CR reports soon
NOT_READY_DELAY = 1.0  # no learned state yet (first reconcile pending): look again soon


class CredentialsError(PrometheusError):
    reason = "PrometheusCredentialsMissing"


class NotConfigured(PrometheusError):
    reason = "PrometheusNotConfigured"


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


def make_client(
    kube: Kube, namespace: str, spec: AdaptationSpec, default_url: str | None
) -> PrometheusClient:
    prom = spec.prometheus
    if prom is None:
        if default_url is None:
            raise NotConfigured(
                "no Prometheus: set spec.adaptation.prometheus.url, or the operator's default "
                "(chart value operator.prometheus.url, flag --prometheus-url)"
            )
        return PrometheusClient(default_url)
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


def observe(
    kube: Kube,
    namespace: str,
    spec: AdaptationSpec,
    default_url: str | None,
    targets: list[adapt.Target],
    now: float,
) -> adapt.Observation:
    """Blocking: credentials, then the queries; every failure becomes an Observation."""
    try:
        client = make_client(kube, namespace, spec, default_url)
    except PrometheusError as exc:
        return adapt.Observation(error=exc)
    return adapt.fetch(spec, targets, client, now)


def _observe_as_work(
    state: OperatorState,
    namespace: str,
    name: str,
    spec: AdaptationSpec,
    targets: list[adapt.Target],
    now: float,
) -> adapt.Observation:
    """``observe`` registered as work in flight (from the pool thread, once it runs)."""
    timeout = parse_duration(spec.prometheus.timeout) if spec.prometheus else 10.0
    # Each request has its own deadline: a history and a live query per class and signal,
    # the series lookup, and two Secret reads.
    requests = 4 * len(targets) + 1
    budget = requests * timeout + 2 * state.kube.timeout + 30
    with state.running(f"adaptation queries {namespace}/{name}", budget):
        return observe(state.kube, namespace, spec, state.config.prometheus_url, targets, now)


def wanted(spec: Mapping[str, Any]) -> bool:
    """The loop runs while adaptation or alert rules are enabled."""
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


async def run(state: OperatorState, cr: CrState, stopped: Stopper, post: Poster) -> None:
    """Query, learn and hand over the state every interval until ``stopped``."""
    key = cr.key
    namespace, name = key
    rules = _Rules(state.kube, namespace, name, cr.uid)
    delay = FIRST_QUERY_DELAY
    try:
        while not stopped:
            await stopped.wait(delay)
            if stopped:
                break
            try:
                full = InferenceThresholdsSpec.model_validate(dict(cr.body.get("spec") or {}))
            except ValidationError:
                delay = 5.0  # the reconcile reports the invalid spec; check again soon
                continue
            spec = full.adaptation
            delay = spec.interval_seconds
            await rules.step(spec, post)
            if not spec.enabled:
                continue  # alert rules only
            learned = cr.adaptation
            if learned is None or not learned.classes:
                delay = min(delay, NOT_READY_DELAY)  # no feasible class rebased yet
                continue
            targets = [
                adapt.Target(e.name, cr.class_nodes.get(e.name, ()), e.seeded)
                for e in learned.classes
            ]
            now = time.time()
            obs = await asyncio.get_running_loop().run_in_executor(
                state.adaptation_pool,
                _observe_as_work,
                state,
                namespace,
                name,
                spec,
                targets,
                now,
            )
            # Read the state only now, with no await before the write: a reconcile that
            # rebased it meanwhile is not overwritten by a stale copy.
            if state.crs.get(key) is not cr or cr.adaptation is None:
                continue
            current = cr.adaptation
            interval = adapt.advance(current, spec, obs, now, overridden_fields(full))
            cr.adaptation = interval.state
            post(interval_events(current, interval, spec.mode))
            if not cr.failing:  # a failing reconcile picks the state up at its retry
                cr.trigger.set()
    finally:
        if stopped.reason is StopReason.SWITCHED_OFF:
            await asyncio.to_thread(rules.remove_now)  # both switched off: no stale alerts
