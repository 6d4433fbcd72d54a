"""Operator configuration in one place: defaults, environment, then CLI flags.

Also applies our kopf settings at startup: our own finalizer and annotation prefix
(never kopf.zalando.org), Events only from explicit decisions (not from log lines),
and standalone mode: kopf's peering stays off; one replica writes, either alone or as
the holder of the leader-election Lease (``leader_election.py``, ``runner.py``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ..api.adaptation import PROMETHEUS_URL_PATTERN
from ..api.crd import GROUP

# kopf's finalizer and its progress annotations live under our API group.
FINALIZER = f"{GROUP}/finalizer"
ENV_PREFIX = "INFERENCE_THRESHOLDS_OPERATOR_"


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name}={raw!r}: expected a number") from None


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(ENV_PREFIX + name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_PREFIX}{name}={raw!r}: expected true or false")


def _env_port(env: Mapping[str, str], name: str, default: int | None) -> int | None:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("off", "none", "disabled"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name}={raw!r}: expected a port number or 'off'") from None


def check_prometheus_url(url: str, where: str) -> str:
    """The default Prometheus URL, checked as the CRD checks spec.adaptation.prometheus.url."""
    if not re.fullmatch(PROMETHEUS_URL_PATTERN, url) or len(url) > 2048:
        raise ValueError(f"{where}={url!r}: expected an http(s) URL, e.g. http://prometheus:9090")
    return url


def _env_url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(ENV_PREFIX + name)
    return check_prometheus_url(raw, ENV_PREFIX + name) if raw else None


# The cyclic GC's thresholds for the operator process (Python's default: 700, 10, 10). Its
# heap is mostly long-lived (the node index, each CR's state) and its garbage is freed by
# reference counting; with the default, full collections traversed that heap ~50 times
# during a start on 10,000 Nodes and 2,000 CRs: 11 s of the operator's 47 s of CPU
# (gc.callbacks), against 2 s with these. A young generation of 20,000 objects holds a
# few MB of garbage cycles at most.
GC_THRESHOLDS = (20_000, 20, 20)


@dataclass(frozen=True)
class OperatorConfig:
    namespaces: tuple[str, ...] = ()  # empty: all namespaces
    policy_path: str | None = None
    kubeconfig: str | None = None
    metrics_port: int | None = 8080
    metrics_host: str = "0.0.0.0"
    liveness_port: int | None = 8081
    liveness_host: str = "0.0.0.0"
    # A change after a quiet spell is reconciled at once; changes closer than this to the
    # last pass are a burst, reconciled once no change came for this long (trigger.py)...
    debounce_seconds: float = 0.5
    # ... and at the latest this long after the burst's first change.
    debounce_max_seconds: float = 5.0
    resync_seconds: float = 600.0
    retry_seconds: float = 15.0
    policy_poll_seconds: float = 5.0
    # Watch Nodes as PartialObjectMetadata (labels and annotations only): cheaper, but
    # status.allocatable (the device plugin's resources, the capacity fallback) is unseen.
    node_metadata_only: bool = False
    # Leader election on a Lease (leader_election.py): replicas beyond the leader wait as
    # warm standbys. Off: this process is the only writer (standalone).
    leader_elect: bool = False
    lease_name: str = "inference-thresholds-operator"
    lease_namespace: str | None = None  # default: $POD_NAMESPACE
    lease_duration_seconds: float = 8.0
    renew_deadline_seconds: float = 5.0
    retry_period_seconds: float = 1.5
    # A reconcile running longer than this is wedged: /healthz fails so the pod restarts.
    wedged_seconds: float = 300.0
    # Where adaptation reads metrics when a CR names no spec.adaptation.prometheus.
    prometheus_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorConfig:
        env = os.environ if env is None else env
        ns = env.get(ENV_PREFIX + "NAMESPACES", "")
        base = cls()
        return cls(
            namespaces=tuple(n.strip() for n in ns.split(",") if n.strip()),
            policy_path=env.get(ENV_PREFIX + "POLICY") or None,
            kubeconfig=env.get("KUBECONFIG") or None,
            metrics_port=_env_port(env, "METRICS_PORT", base.metrics_port),
            liveness_port=_env_port(env, "LIVENESS_PORT", base.liveness_port),
            debounce_seconds=_env_float(env, "DEBOUNCE_SECONDS", base.debounce_seconds),
            debounce_max_seconds=_env_float(env, "DEBOUNCE_MAX_SECONDS", base.debounce_max_seconds),
            resync_seconds=_env_float(env, "RESYNC_SECONDS", base.resync_seconds),
            retry_seconds=_env_float(env, "RETRY_SECONDS", base.retry_seconds),
            policy_poll_seconds=_env_float(env, "POLICY_POLL_SECONDS", base.policy_poll_seconds),
            node_metadata_only=_env_bool(env, "NODE_METADATA_ONLY", base.node_metadata_only),
            leader_elect=_env_bool(env, "LEADER_ELECT", base.leader_elect),
            lease_name=env.get(ENV_PREFIX + "LEASE_NAME") or base.lease_name,
            lease_namespace=env.get(ENV_PREFIX + "LEASE_NAMESPACE")
            or env.get("POD_NAMESPACE")
            or None,
            lease_duration_seconds=_env_float(
                env, "LEASE_DURATION_SECONDS", base.lease_duration_seconds
            ),
            renew_deadline_seconds=_env_float(
                env, "RENEW_DEADLINE_SECONDS", base.renew_deadline_seconds
            ),
            retry_period_seconds=_env_float(env, "RETRY_PERIOD_SECONDS", base.retry_period_seconds),
            wedged_seconds=_env_float(env, "WEDGED_SECONDS", base.wedged_seconds),
            prometheus_url=_env_url(env, "PROMETHEUS_URL"),
        )

    def with_overrides(self, **changes: Any) -> OperatorConfig:
        """CLI flags on top: only the ones given (not None)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def liveness_endpoint(self) -> str | None:
        if self.liveness_port is None:
            return None
        return f"http://{self.liveness_host}:{self.liveness_port}/healthz"


_current: OperatorConfig | None = None


def configure(config: OperatorConfig) -> None:
    """Set the configuration before kopf starts (the CLI does; `kopf run` uses the env)."""
    global _current
    _current = config


def current() -> OperatorConfig:
    return _current if _current is not None else OperatorConfig.from_env()


def apply_kopf_settings(settings: Any) -> None:
    """Our kopf settings; called from @kopf.on.startup before any object is touched."""
    import kopf

    from .diff_base import NoDiffBase  # imports kopf, as this function does

    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase(
        prefix=GROUP, key="last-handled-configuration"
    )
    # Events come from explicit decisions only; log lines stay in the log.
    settings.posting.enabled = True
    settings.posting.level = logging.CRITICAL
    settings.posting.reporting_component = "inference-thresholds-operator"
    settings.posting.event_name_prefix = "inference-thresholds-"
    settings.peering.standalone = True
    # Bounded retries with backoff for unexpected handler errors (never a hot loop).
    settings.execution.max_workers = 4
    # A per-object worker keeps its object's last body while it idles: with the 5 s default,
    # a start held a body for every Node, CR and ConfigMap at once.
    settings.queueing.idle_timeout = 0.5
    # Lists come in pages (CRs, ConfigMaps; Nodes have their own watch). A generated
    # ConfigMap lists every selected node: ~90 KB each at 10,000 nodes, so a page of 500
    # was 45 MB of JSON parsed at once; pages of 50 keep a list's peak to a few MB.
    settings.watching.chunk_size = 50
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.queueing.error_delays = (1, 2, 5, 10, 30, 60)
