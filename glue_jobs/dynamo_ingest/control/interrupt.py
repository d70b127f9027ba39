"""Stopping a run on request (Ctrl-C, SIGTERM) so that it ends like any failed run: its Spark
jobs cancelled, a FAILED report with the counts its checkpoints hold, the ledger FAILED and
retryable, and the next run resuming.

The signal handlers only record the request and cancel the Spark jobs; the driver, whose
``collect`` then fails, turns the request into the report (:mod:`dynamo_ingest.job`).
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from dynamo_ingest.core.errors import DynamoIngestError

LOG = logging.getLogger(__name__)
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterruptedError(DynamoIngestError):
    """The run was asked to stop (SIGINT, SIGTERM) before its Spark jobs started."""


class Interrupt:
    """A stop request and what to do about it at each stage of a run.

    Before Spark is up, a request raises :class:`RunInterruptedError` in the main thread
    (nothing was written yet); once it is (:meth:`arm`), a request cancels every Spark job
    until the run has stopped; after the jobs are over (:meth:`disarm`), it is only recorded:
    the run is already finishing.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._cancel: Callable[[], None] | None = None
        self._over = threading.Event()
        self._installed = False
        self._stop_now = False

    @property
    def requested(self) -> bool:
        """True once a stop was requested."""
        return self.signal_name is not None

    @property
    def reason(self) -> str:
        """The report's one-line error: ``interrupted (SIGINT)``."""
        return f"interrupted ({self.signal_name})"

    def request(self, signal_name: str) -> None:
        """Ask the run to stop (a signal handler, or a test)."""
        if self.requested or self._over.is_set():
            self.signal_name = self.signal_name or signal_name
            return
        self.signal_name = signal_name
        if self._cancel is None:
            raise RunInterruptedError(self.reason)
        # Cancelling calls into the JVM, which the handler may have interrupted mid-call: do
        # it from a thread, and again until the run stops, so that a job submitted just after
        # the request is cancelled too.
        threading.Thread(target=self._cancel_until_over, name="cancel-spark-jobs",
                         daemon=True).start()

    def check(self) -> None:
        """Raise :class:`RunInterruptedError` if a stop was requested (before a Spark job)."""
        if self.requested:
            raise RunInterruptedError(self.reason)

    def arm(self, cancel: Callable[[], None], *, stop_now_on_signal: bool = False) -> None:
        """An engine is up: a request from now on calls ``cancel`` (Spark: cancel its jobs;
        the in-process engine: its stop flag, which a Lambda's deadline uses to end each
        partition cleanly). With ``stop_now_on_signal``, a signal also raises
        :class:`RunInterruptedError` in the main thread, so that waiting on workers stuck in
        a throttling storm ends at once (their checkpoints bound what a resume rewrites)."""
        self._cancel = cancel
        self._stop_now = stop_now_on_signal
        if self._installed:
            # PySpark installs its own SIGINT handler when its context starts: take it back.
            self._install()

    def disarm(self) -> None:
        """The Spark jobs are over: a request from now on is only recorded."""
        self._over.set()

    def _cancel_until_over(self) -> None:
        assert self._cancel is not None
        while True:
            try:
                self._cancel()
            except Exception:  # e.g. the JVM got the signal too and is gone
                LOG.debug("cancelling the Spark jobs failed", exc_info=True)
                return
            if self._over.wait(0.5):
                return

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signal.Signals(signum).name)
        if self._stop_now and not self._over.is_set():
            raise RunInterruptedError(self.reason)

    def _install(self) -> None:
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._handle)
        self._installed = True


@contextmanager
def stop_on_signals() -> Iterator[Interrupt]:
    """Turn SIGINT and SIGTERM into a stop request for the run inside (main thread only);
    the previous handlers come back afterwards."""
    interrupt = Interrupt()
    previous = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    interrupt._install()
    try:
        yield interrupt
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
