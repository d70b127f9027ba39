"""The adaptive rate limiter, on a simulated clock (nothing really sleeps)."""

from __future__ import annotations

import pytest
from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.engine.rate import BURST_SECONDS, AdaptiveRateLimiter


class SimulatedTime:
    """A monotonic clock that only moves when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def limiter(rate: float | None, time_: SimulatedTime, **kwargs: float) -> AdaptiveRateLimiter:
    return AdaptiveRateLimiter(rate, clock=time_.clock, sleep=time_.sleep, **kwargs)


def achieved_rate(pacer: AdaptiveRateLimiter, time_: SimulatedTime, wcu: int, calls: int) -> float:
    """WCU/s over a run of ``calls`` acquisitions once the bucket's burst is spent."""
    sleeps = len(time_.sleeps)
    while len(time_.sleeps) == sleeps:
        pacer.acquire(wcu)
    start = time_.now
    for _ in range(calls):
        pacer.acquire(wcu)
    return wcu * calls / (time_.now - start)


@pytest.mark.parametrize(("rate", "wcu"), [(100.0, 25), (1000.0, 25), (40.0, 300), (7.5, 1)])
def test_achieved_rate_matches_the_configured_rate(rate: float, wcu: int) -> None:
    time_ = SimulatedTime()
    assert achieved_rate(limiter(rate, time_), time_, wcu, 400) == pytest.approx(rate, rel=0.01)


def test_a_fresh_bucket_lets_only_a_small_burst_through() -> None:
    time_ = SimulatedTime()
    pacer = limiter(1000.0, time_)
    for _ in range(int(1000.0 * BURST_SECONDS) // 25):
        pacer.acquire(25)
    assert time_.sleeps == []
    pacer.acquire(25)
    assert time_.sleeps == [pytest.approx(25 / 1000.0)]


def test_idle_time_does_not_build_up_more_than_the_burst() -> None:
    time_ = SimulatedTime()
    pacer = limiter(100.0, time_)
    time_.now += 3600.0
    pacer.acquire(int(100.0 * BURST_SECONDS) + 100)
    assert sum(time_.sleeps) == pytest.approx(1.0)


def test_unlimited_never_sleeps_nor_reads_the_clock() -> None:
    def clock() -> float:
        raise AssertionError("an unlimited limiter has no reason to read the clock")

    time_ = SimulatedTime()
    pacer = AdaptiveRateLimiter(None, clock=clock, sleep=time_.sleep)
    for _ in range(1000):
        pacer.acquire(400)
    pacer.on_throttle()
    pacer.on_success()
    assert time_.sleeps == []
    assert pacer.current_rate is None


def test_throttling_halves_the_rate_down_to_the_floor_and_pacing_follows() -> None:
    time_ = SimulatedTime()
    pacer = limiter(1000.0, time_)
    pacer.on_throttle()
    assert pacer.current_rate == pytest.approx(500.0)
    assert achieved_rate(pacer, time_, 25, 200) == pytest.approx(500.0, rel=0.01)
    for _ in range(20):
        pacer.on_throttle()
    assert pacer.current_rate == pytest.approx(1000.0 * 0.05)
    assert achieved_rate(pacer, time_, 25, 50) == pytest.approx(50.0, rel=0.01)


def test_success_recovers_linearly_in_time_up_to_the_cap() -> None:
    time_ = SimulatedTime()
    pacer = limiter(1000.0, time_, increase_fraction_per_s=0.05)
    pacer.on_throttle()
    time_.now += 4.0
    pacer.on_success()
    assert pacer.current_rate == pytest.approx(500.0 + 4.0 * 0.05 * 1000.0)
    time_.now += 1.0
    pacer.on_success()
    assert pacer.current_rate == pytest.approx(750.0)
    time_.now += 600.0
    pacer.on_success()
    assert pacer.current_rate == pytest.approx(1000.0)


def test_success_at_the_cap_does_not_bank_recovery_for_later() -> None:
    time_ = SimulatedTime()
    pacer = limiter(1000.0, time_)
    time_.now += 600.0
    pacer.on_success()
    pacer.on_throttle()
    pacer.on_success()  # no time has passed since the throttle
    assert pacer.current_rate == pytest.approx(500.0)


@pytest.mark.parametrize("rate", [0.0, -5.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(ArgumentError, match="WCU/s share > 0"):
        AdaptiveRateLimiter(rate)
