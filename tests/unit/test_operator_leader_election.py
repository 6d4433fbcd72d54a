"""Lease leader election, as client-go's rules: expiry on the candidate's own clock,
optimistic writes, transitions counted, graceful release, writes fenced after the
renew deadline. The Lease store below keeps the apiserver's resourceVersion semantics
(409 on a stale write); the same elector runs against the real apiserver in
tests/cluster/test_operator_failover.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from inference_thresholds.controller.leader_election import (
    ElectionConfig,
    LeaderElector,
    LeaseRecord,
    NotLeader,
    write_guard,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """One Lease with resourceVersion checks (what LeaseApi does against the apiserver)."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0

    def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise ApiException(status=409)
        return self._store(spec)

    def update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if lease["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiException(status=409)
        return self._store(spec)

    def _store(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        self.lease = {"metadata": {"resourceVersion": str(self.version)}, "spec": dict(spec)}
        return copy.deepcopy(self.lease)


CONFIG = ElectionConfig(namespace="ns", lease_duration=8, renew_deadline=5, retry_period=1.5)


class Pair:
    """Two candidates, "a" and "b", each with its own clock, on one Lease."""

    def __init__(self) -> None:
        self.store, self.ca, self.cb = LeaseStore(), Clock(), Clock()
        self.a = LeaderElector(self.store, ElectionConfig("ns", identity="a"), self.ca)  # type: ignore[arg-type]
        self.b = LeaderElector(self.store, ElectionConfig("ns", identity="b"), self.cb)  # type: ignore[arg-type]

    def spec(self) -> dict[str, Any]:
        assert self.store.lease is not None
        spec: dict[str, Any] = self.store.lease["spec"]
        return spec


def test_first_candidate_creates_the_lease_and_the_other_stands_by() -> None:
    p = Pair()
    assert p.a.try_acquire_or_renew() is True
    assert p.spec()["holderIdentity"] == "a"
    assert p.spec()["leaseTransitions"] == 0
    assert p.b.try_acquire_or_renew() is False
    assert p.a.fresh() and not p.b.fresh()


def test_a_standby_waits_the_lease_duration_on_its_own_clock() -> None:
    p = Pair()
    p.a.try_acquire_or_renew()
    p.cb.now += 1000.0  # b's clock is far ahead: skew between pods must not matter
    assert p.b.try_acquire_or_renew() is False  # first sight of the record starts its wait
    p.cb.now += 7.9
    assert p.b.try_acquire_or_renew() is False
    p.ca.now += 7.0
    assert p.a.try_acquire_or_renew() is True  # a renews: the record changed, b waits anew
    p.cb.now += 7.9
    assert p.b.try_acquire_or_renew() is False
    p.cb.now += 8.0  # a is gone (no renewals) for a whole lease duration on b's clock
    assert p.b.try_acquire_or_renew() is True
    spec = p.spec()
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1


def test_renewal_keeps_the_acquire_time_and_transitions() -> None:
    p = Pair()
    p.a.try_acquire_or_renew()
    acquired = p.spec()["acquireTime"]
    p.ca.now += 1.5
    assert p.a.try_acquire_or_renew() is True
    spec = p.spec()
    assert spec["acquireTime"] == acquired and spec["leaseTransitions"] == 0


def test_a_concurrent_write_loses_with_409() -> None:
    p = Pair()
    p.a.try_acquire_or_renew()
    p.b.try_acquire_or_renew()
    p.cb.now += 9.0  # b thinks the lease expired...
    stale = p.store.get()
    p.ca.now += 1.0
    assert p.a.try_acquire_or_renew() is True  # ...but a renews between b's read and write
    p.store.get = lambda: stale  # type: ignore[method-assign]  # b read before a's renewal
    assert p.b.try_acquire_or_renew() is False  # its PUT carries a stale resourceVersion
    assert p.spec()["holderIdentity"] == "a"


def test_release_hands_over_without_waiting() -> None:
    p = Pair()
    p.a.try_acquire_or_renew()
    p.b.try_acquire_or_renew()
    assert p.a.release() is True
    spec = p.spec()
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert not p.a.fresh()
    assert p.b.try_acquire_or_renew() is True  # no lease duration to wait out
    assert p.a.release() is False  # no longer ours: untouched


def test_writes_are_refused_after_the_renew_deadline() -> None:
    p = Pair()
    p.a.try_acquire_or_renew()
    guard = write_guard(p.a)
    guard("PUT", "/api/v1/namespaces/x/configmaps/y")  # fresh: allowed
    p.ca.now += 4.9
    guard("PUT", "/x")
    p.ca.now += 0.2  # past the 5 s renew deadline without a renewal
    with pytest.raises(NotLeader):
        guard("PUT", "/x")


def test_junk_in_the_lease_counts_as_expired() -> None:
    record = LeaseRecord.from_lease({"spec": {"leaseDurationSeconds": "soon", "holderIdentity": 7}})
    assert record.duration == 0 and record.holder == "7"


def test_timings_must_nest() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        ElectionConfig(namespace="ns", lease_duration=5, renew_deadline=5, retry_period=1)
    assert CONFIG.lease_duration == 8


def test_identity_is_the_pod_name_when_there_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_thresholds.controller.leader_election import default_identity

    monkeypatch.setenv("POD_NAME", "op-7d9f-abcde")
    assert default_identity() == "op-7d9f-abcde"
    monkeypatch.delenv("POD_NAME")
    first, second = default_identity(), default_identity()
    assert first != second  # two processes on one host are two candidates


def test_a_restarted_container_of_the_same_pod_renews_at_once() -> None:
    store, clock = LeaseStore(), Clock()
    old = LeaderElector(store, ElectionConfig("ns", identity="op-abc"), clock)  # type: ignore[arg-type]
    assert old.try_acquire_or_renew()
    restarted = LeaderElector(store, ElectionConfig("ns", identity="op-abc"), Clock())  # type: ignore[arg-type]
    assert restarted.try_acquire_or_renew() is True  # no lease duration to wait out
    assert store.lease is not None and store.lease["spec"]["leaseTransitions"] == 0
