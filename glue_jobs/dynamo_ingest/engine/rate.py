"""Per-task pacing of writes in WCU/s: a token bucket whose rate adapts to throttling (AIMD).

The job splits its global budget (``--write_rate``) among the tasks that run at once; each
task's limiter enforces only its share, halves it when DynamoDB throttles and wins it back
linearly while writes succeed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dynamo_ingest.core.errors import ArgumentError

# The bucket holds this many seconds of the current rate, so a task starts at once and absorbs
# scheduling jitter without bursting far above its share.
BURST_SECONDS = 0.25


class AdaptiveRateLimiter:
    """Paces one task's writes to at most ``current_rate`` WCU/s (``None``: unlimited)."""

    __slots__ = ("_cap", "_clock", "_decrease", "_floor", "_increase_fraction", "_increase_per_s",
                 "_last_adjust", "_last_refill", "_min_fraction", "_rate", "_share",
                 "_share_poll_s", "_share_read_at", "_sleep", "_tokens")

    def __init__(self, rate_wcu_s: float | None, *, min_rate_fraction: float = 0.05,
                 decrease: float = 0.5, increase_fraction_per_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 share: Callable[[], float] | None = None,
                 share_poll_s: float = 1.0) -> None:
        if rate_wcu_s is not None and not rate_wcu_s > 0:
            raise ArgumentError(
                f"a task's write rate must be a WCU/s share > 0 or None (unlimited), found "
                f"{rate_wcu_s!r}: check --write_rate and the number of concurrent tasks")
        if not (0 < min_rate_fraction <= 1 and 0 < decrease < 1 and increase_fraction_per_s >= 0):
            raise ArgumentError(
                f"rate adaptation expects 0 < min_rate_fraction <= 1, 0 < decrease < 1 and "
                f"increase_fraction_per_s >= 0, found {min_rate_fraction!r}, {decrease!r}, "
                f"{increase_fraction_per_s!r}")
        self._cap = rate_wcu_s
        self._rate = rate_wcu_s or 0.0
        self._floor = self._rate * min_rate_fraction
        self._decrease = decrease
        self._increase_per_s = self._rate * increase_fraction_per_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._rate * BURST_SECONDS
        now = clock() if rate_wcu_s is not None else 0.0
        self._last_refill = now
        self._last_adjust = now
        # The share hook: this task's part of a budget shared with other loads of the table
        # (control/budget.py), re-read every share_poll_s; it replaces the cap.
        self._min_fraction = min_rate_fraction
        self._increase_fraction = increase_fraction_per_s
        self._share = share if rate_wcu_s is not None else None
        self._share_poll_s = share_poll_s
        self._share_read_at = float("-inf")

    @property
    def current_rate(self) -> float | None:
        """The rate now enforced in WCU/s (``None`` when unlimited)."""
        return None if self._cap is None else self._rate

    def acquire(self, wcu: int) -> None:
        """Block until ``wcu`` units may be written at the current rate.

        A request larger than the burst is let through once the bucket has paid for it, so
        the long-run rate holds for any batch size.
        """
        if self._cap is None:
            return
        self._poll_share()
        self._refill(self._clock())
        self._tokens -= wcu
        if self._tokens < 0:
            # The debt is repaid by the refill of the next call, which measures the sleep.
            self._sleep(-self._tokens / self._rate)

    def _poll_share(self) -> None:
        """Re-read the shared budget's grant when due; a grant of 0 waits for one."""
        if self._share is None:
            return
        while self._clock() - self._share_read_at >= self._share_poll_s:
            self._share_read_at = self._clock()
            cap = self._share()
            if cap > 0:
                self._set_cap(cap)
                return
            self._sleep(self._share_poll_s)

    def _set_cap(self, cap: float) -> None:
        """A new cap: the rate follows it down at once, and up at once when it was at the
        old cap (not held down by throttling)."""
        assert self._cap is not None
        self._refill(self._clock())
        if self._rate >= self._cap * 0.999 or self._rate > cap:
            self._rate = cap
        self._cap = cap
        self._floor = cap * self._min_fraction
        self._increase_per_s = cap * self._increase_fraction
        self._tokens = min(self._tokens, self._rate * BURST_SECONDS)

    def on_throttle(self) -> None:
        """DynamoDB throttled: cut the rate multiplicatively, not below the floor."""
        if self._cap is None:
            return
        now = self._clock()
        self._refill(now)
        self._rate = max(self._floor, self._rate * self._decrease)
        self._tokens = min(self._tokens, self._rate * BURST_SECONDS)
        self._last_adjust = now

    def on_success(self) -> None:
        """A batch went through whole: win back rate linearly in time, up to the configured cap."""
        if self._cap is None:
            return
        now = self._clock()
        if self._rate < self._cap:
            self._refill(now)
            recovered = self._increase_per_s * (now - self._last_adjust)
            self._rate = min(self._cap, self._rate + recovered)
        self._last_adjust = now

    def _refill(self, now: float) -> None:
        self._tokens = min(self._rate * BURST_SECONDS,
                           self._tokens + (now - self._last_refill) * self._rate)
        self._last_refill = now
