"""When a CR's pass is due: at once after a quiet spell, once per burst, never starved."""

from __future__ import annotations

import asyncio

import pytest

from inference_thresholds.controller.trigger import Debounce, Trigger


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_nothing_pending_is_never_due() -> None:
    rule = Debounce(debounce=0.5, max_delay=5.0)
    assert rule.due_in(0.0) is None
    assert not rule.pending


def test_an_isolated_change_is_due_at_once() -> None:
    rule = Debounce(debounce=0.5, max_delay=5.0)
    rule.change(10.0)
    assert rule.due_in(10.0) == 0.0  # the first change ever
    rule.passed(10.0)
    rule.change(10.6)  # more than `debounce` after the last pass: quiet spell over
    assert rule.due_in(10.6) == 0.0


def test_a_burst_after_a_pass_waits_until_it_settles() -> None:
    rule = Debounce(debounce=0.5, max_delay=5.0)
    rule.change(0.0)
    rule.passed(0.0)  # leading edge taken
    rule.change(0.1)
    assert rule.due_in(0.1) == pytest.approx(0.5)
    rule.change(0.4)  # each change pushes the trailing pass back
    assert rule.due_in(0.4) == pytest.approx(0.5)
    assert rule.due_in(0.8) == pytest.approx(0.1)
    assert rule.due_in(0.9) == 0.0
    rule.passed(0.9)
    assert rule.due_in(0.9) is None


def test_a_steady_stream_is_served_at_least_every_max_delay() -> None:
    rule = Debounce(debounce=0.5, max_delay=2.0)
    rule.passed(0.0)
    passes = []
    t = 0.1
    while t < 10.0:  # a change every 0.1 s, forever: never quiet for 0.5 s
        rule.change(t)
        if rule.due_in(t) == 0.0:
            passes.append(round(t, 1))
            rule.passed(t)
        t += 0.1
    assert passes
    gaps = [b - a for a, b in zip([0.0, *passes], passes, strict=False)]
    assert max(gaps) <= 0.1 + 2.0 + 0.1 + 1e-9  # first change, max_delay, sampling step


def test_burst_of_twenty_edits_costs_two_passes() -> None:
    clock = Clock()
    rule = Debounce(debounce=0.5, max_delay=5.0)
    passes = 0
    for _ in range(20):  # one edit every 50 ms
        rule.change(clock())
        if rule.due_in(clock()) == 0.0:
            passes += 1
            rule.passed(clock())
        clock.advance(0.05)
    assert passes == 1  # the leading edge
    delay = rule.due_in(clock())
    assert delay is not None and 0 < delay <= 0.5
    clock.advance(delay)
    assert rule.due_in(clock()) == 0.0  # the trailing pass
    rule.passed(clock())
    assert passes + 1 == 2


def test_trigger_wait_returns_at_once_for_an_isolated_change() -> None:
    async def scenario() -> tuple[bool, float]:
        trigger = Trigger(debounce=30.0, max_delay=60.0)
        never = asyncio.Event()
        trigger.set()
        loop = asyncio.get_running_loop()
        began = loop.time()
        due = await trigger.wait(never.wait, timeout=60.0)
        return due, loop.time() - began

    due, waited = asyncio.run(scenario())
    assert due is True
    assert waited < 5.0  # far below the 30 s debounce: no trailing wait


def test_trigger_wait_follows_the_clock_and_stops() -> None:
    clock = Clock()

    async def scenario() -> list[object]:
        trigger = Trigger(debounce=1.0, max_delay=10.0, clock=clock)
        stop = asyncio.Event()
        seen: list[object] = []
        trigger.set()
        seen.append(await trigger.wait(stop.wait, timeout=60.0))  # leading edge
        trigger.passed()
        trigger.set()  # a follow-up change: trailing, not due yet
        assert trigger.is_set()
        waiter = asyncio.ensure_future(trigger.wait(stop.wait, timeout=60.0))
        await asyncio.sleep(0)  # let it start waiting (no time passes on the clock)
        assert not waiter.done()
        clock.advance(1.0)  # quiet for `debounce` now: a new change makes it look again
        trigger.set()
        clock.advance(1.0)
        trigger.set()  # still within the burst: not due, keeps waiting
        await asyncio.sleep(0)
        assert not waiter.done()
        stop.set()
        seen.append(await waiter)
        return seen

    assert asyncio.run(scenario()) == [True, False]


def test_clear_drops_pending_changes() -> None:
    trigger = Trigger(debounce=0.5, max_delay=5.0)
    trigger.set()
    assert trigger.is_set()
    trigger.clear()
    assert not trigger.is_set()
