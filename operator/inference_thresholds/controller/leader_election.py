"""One active replica: leader election on a coordination.k8s.io/v1 Lease, as client-go does.

The Lease's spec: ``holderIdentity`` (who leads; empty after a graceful release),
``leaseDurationSeconds`` (how long others wait after they last saw it renewed),
``acquireTime``, ``renewTime`` and ``leaseTransitions`` (a counter of holder changes).

Like client-go's ``tryAcquireOrRenew``: a candidate reads the Lease; when the record
changed since it last looked, it notes the time on its *own* monotonic clock (no clock
skew between pods matters). It takes the Lease when nobody holds it, when the holder
released it, or when ``leaseDurationSeconds`` passed on its clock without a change; the
write is a PUT carrying the resourceVersion it read, so of two candidates exactly one
wins (the other gets 409). The leader renews every ``retry_period``; when it has not
renewed for ``renew_deadline`` (< the lease duration) it must stop writing: ``fresh()``
turns False, the API client's write guard refuses writes, and the caller exits. On
SIGTERM the leader stops its handlers, then releases the Lease (holder "" and a
1-second duration), so the standby takes over within one ``retry_period``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from kubernetes.client.exceptions import ApiException

from .kube import Json, Kube

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class ElectionConfig:
    namespace: str
    name: str = "inference-thresholds-operator"
    identity: str = ""
    # client-go's defaults are 15/10/2 s. Shorter here: a standby notices the last renewal
    # up to one retry period late and tries again once per retry period, so a killed
    # leader is replaced within lease + 2 retries (~11 s, target 15 s); the old leader
    # stops writing 3 s before the earliest takeover.
    lease_duration: float = 8.0
    renew_deadline: float = 5.0
    retry_period: float = 1.5

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election: need 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period:g} / {self.renew_deadline:g} / {self.lease_duration:g})"
            )


def default_identity() -> str:
    """``POD_NAME`` (the chart sets it): a container the kubelet restarts in the same pod
    is the holder again and renews at once, which is safe since the kubelet starts it only
    after the old one exited; two pods never share a name. Elsewhere (several processes
    on one host) the host name plus a random suffix, so each process is its own candidate."""
    pod = os.environ.get("POD_NAME")
    if pod:
        return pod
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


def micro_time(at: float | None = None) -> str:
    """metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    duration: float
    transitions: int
    acquire_time: str | None
    renew_time: str | None

    @classmethod
    def from_lease(cls, lease: Json) -> LeaseRecord:
        spec = lease.get("spec") or {}
        try:
            duration = float(spec.get("leaseDurationSeconds") or 0)
            transitions = int(spec.get("leaseTransitions") or 0)
        except (TypeError, ValueError):
            duration, transitions = 0.0, 0  # junk: treated as expired
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration=duration,
            transitions=transitions,
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
        )


class LeaseApi:
    """The three Lease calls the election makes, through the thin JSON client."""

    def __init__(self, kube: Kube, namespace: str, name: str) -> None:
        self.kube = kube
        self.base = f"/apis/coordination.k8s.io/v1/namespaces/{quote(namespace)}/leases"
        self.path = f"{self.base}/{quote(name)}"
        self.name = name

    def get(self) -> Json | None:
        try:
            return self.kube.request("GET", self.path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create(self, spec: Json) -> Json:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease"}
        return self.kube.request(
            "POST", self.base, {**body, "metadata": {"name": self.name}, "spec": spec}
        )

    def update(self, lease: Json, spec: Json) -> Json:
        """PUT with the resourceVersion read: a concurrent writer gets us a 409."""
        body = {**lease, "spec": spec}
        return self.kube.request("PUT", self.path, body)


class LeaderElector:
    """Acquire, hold and release one Lease; ``fresh()`` says whether writing is safe."""

    def __init__(self, api: LeaseApi, config: ElectionConfig, clock: Clock = time.monotonic):
        self.api = api
        self.config = config
        self.identity = config.identity or default_identity()
        self.clock = clock
        self.observed: LeaseRecord | None = None
        self.observed_at = -float("inf")
        self.renewed_at = -float("inf")  # our last successful acquire or renew
        self.leading = False
        self.transitions = 0

    def fresh(self) -> bool:
        """Leading, and renewed within the renew deadline: our writes are safe."""
        return self.leading and self.clock() - self.renewed_at < self.config.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One attempt (blocking: run it in a thread)."""
        now = self.clock()
        lease = self.api.get()
        spec = self._spec(acquire_time=micro_time(), transitions=0)
        if lease is None:
            try:
                self.api.create(spec)
            except ApiException as exc:
                if exc.status == 409:  # another candidate created it first
                    return False
                raise
            return self._won(now, LeaseRecord.from_lease({"spec": spec}))
        record = LeaseRecord.from_lease(lease)
        if record != self.observed:
            self.observed, self.observed_at = record, now
        mine = record.holder == self.identity
        if record.holder and not mine and now < self.observed_at + record.duration:
            self.leading = False
            return False  # held by another, and renewed within its duration
        spec = self._spec(
            acquire_time=record.acquire_time if mine and record.acquire_time else micro_time(),
            transitions=record.transitions + (0 if mine else 1),
        )
        try:
            updated = self.api.update(lease, spec)
        except ApiException as exc:
            if exc.status == 409:  # someone wrote it since we read it
                return False
            raise
        return self._won(now, LeaseRecord.from_lease(updated))

    def _spec(self, *, acquire_time: str, transitions: int) -> Json:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.config.lease_duration)),
            "acquireTime": acquire_time,
            "renewTime": micro_time(),
            "leaseTransitions": transitions,
        }

    def _won(self, at: float, record: LeaseRecord) -> bool:
        if not self.leading:
            log.info(
                "leader election: %s leads (lease transitions %d)",
                self.identity,
                record.transitions,
            )
        self.leading = True
        self.renewed_at = at
        self.observed, self.observed_at = record, at
        self.transitions = record.transitions
        return True

    def release(self) -> bool:
        """Give the Lease up (holder "", 1 s), only if we still hold it; blocking."""
        if not self.leading:
            return False
        self.leading = False
        lease = self.api.get()
        if lease is None or LeaseRecord.from_lease(lease).holder != self.identity:
            return False
        spec = dict(lease.get("spec") or {})
        now = micro_time()
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=now, acquireTime=now)
        try:
            self.api.update(lease, spec)
        except ApiException as exc:
            log.warning("leader election: release failed (%s)", exc.status)
            return False
        log.info("leader election: %s released the lease", self.identity)
        return True

    # --- the loops (asyncio) ----------------------------------------------------------------

    async def _attempt(self) -> bool:
        try:
            return await asyncio.to_thread(self.try_acquire_or_renew)
        except Exception as exc:  # API down, RBAC, junk: retried next period
            log.warning("leader election: %s: %s", type(exc).__name__, str(exc)[:300])
            return False

    def _jittered(self) -> float:
        return self.config.retry_period * random.uniform(1.0, 1.1)

    async def acquire(self, stop: Callable[[], Awaitable[object]]) -> bool:
        """Wait as a standby until we lead (True) or ``stop()`` completes (False)."""
        stopping = asyncio.ensure_future(stop())
        try:
            while not await self._attempt():
                done, _ = await asyncio.wait({stopping}, timeout=self._jittered())
                if done:
                    return False
            return True
        finally:
            stopping.cancel()

    async def hold(self) -> None:
        """Renew every retry period; returns when leadership is lost (not renewed within
        the renew deadline, or someone else holds the Lease)."""
        while True:
            await asyncio.sleep(self.config.retry_period)
            if await self._attempt():
                continue
            if not self.fresh():
                self.leading = False
                holder = self.observed.holder if self.observed else "?"
                log.error("leader election: lost the lease (holder now %r)", holder)
                return


def write_guard(elector: LeaderElector) -> Callable[[str, str], None]:
    """For ``Kube.guard``: refuse a write once the lease may have passed to another."""

    def guard(method: str, path: str) -> None:
        if not elector.fresh():
            raise NotLeader(f"{method} {path}: not the leader (lease not renewed in time)")

    return guard


class NotLeader(RuntimeError):
    """A write was refused: this replica no longer holds the Lease."""


def describe(elector: LeaderElector) -> dict[str, Any]:
    return {
        "identity": elector.identity,
        "leading": elector.fresh(),
        "transitions": elector.transitions,
    }
