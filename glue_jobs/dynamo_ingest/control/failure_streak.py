"""A call that a load repeats while it runs (a lease renewal, a share read, a checkpoint) and
that may fail many times in a row: said once when it starts failing, once when it recovers
or when the load stops trying, never once per attempt.

An endpoint that dies mid-run fails every such call every half second in every worker; one
line per attempt (with a traceback each) buries the one line that says what happened.
"""

from __future__ import annotations

import logging
import threading


class FailureStreak:
    """The failures of one repeated call, in a row; thread-safe (a writer's threads share
    one)."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self.what = what  # e.g. "renewing the write-budget lease of orders"
        self.failures = 0
        self._lock = threading.Lock()

    def failed(self, err: BaseException, consequence: str) -> None:
        """One more failure; the first of a streak is logged, with what the load does
        meanwhile (``consequence``), without a traceback."""
        with self._lock:
            self.failures += 1
            first = self.failures == 1
        if first:
            self._log.warning("%s failed: %s; %s (said once until it works again)",
                              self.what, err, consequence)

    def succeeded(self) -> None:
        """The call worked: a streak that was failing ends, and says so."""
        with self._lock:
            failures, self.failures = self.failures, 0
        if failures:
            self._log.warning("%s works again after %d failed attempt(s)", self.what, failures)

    def ended(self) -> None:
        """The load stopped trying: a streak still failing says how many attempts failed."""
        with self._lock:
            failures, self.failures = self.failures, 0
        if failures:
            self._log.warning("%s was still failing when the load stopped trying (%d failed "
                              "attempt(s))", self.what, failures)
