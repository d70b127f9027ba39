"""The DynamoDB writer of one partition: BatchWriteItem batches, retries with full-jitter
backoff inside a bounded budget, adaptive pacing and an acknowledged-prefix for checkpoints.

BatchWriteItem is not atomic: DynamoDB may write part of a batch and hand the rest back as
``UnprocessedItems``. Only those are resent, after a backoff, so an acknowledged item is
never sent twice; a row that cannot be written is returned as a :class:`FailedWrite` with the
reason, never dropped.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dynamo_ingest.engine.rate import AdaptiveRateLimiter
from dynamo_ingest.engine.transport import (
    BatchRejectedError,
    DynamoTransport,
    RetryableError,
    ThrottledError,
)

# AWS BatchWriteItem limits: 25 put/delete requests and 16 MB per call.
MAX_BATCH_ITEMS = 25
MAX_BATCH_BYTES = 16 * 1024 * 1024
# 2**60 × any base delay is far past any max_delay_s; the cap keeps the float finite.
_MAX_BACKOFF_EXPONENT = 60


# Not frozen: one is built per item written, and a frozen dataclass's __init__ (a
# object.__setattr__ per field) costs about a microsecond more each.
@dataclass(slots=True)
class WriteRequest:
    """One item to put."""

    position: int  # 0-based position in this partition's write stream (strictly increasing)
    record_no: int  # 1-based data-row number in the file, for the rejects file
    item: dict[str, dict[str, Any]]  # low-level DynamoDB JSON
    key: tuple[str, ...]  # canonical key: two equal keys never share a batch
    size: int  # DynamoDB item size in bytes
    wcu: int
    values: Sequence[str | None] = ()  # the row as read, for the rejects file if not written


@dataclass(frozen=True)
class RetryPolicy:
    """Full-jitter backoff, and the time one batch (with its one-by-one resends after a
    rejection) may spend from its first send until it gives up."""

    max_retry_seconds: float = 300.0
    base_delay_s: float = 0.05
    max_delay_s: float = 20.0

    def backoff(self, elapsed: float, retries: int, rng: random.Random) -> float | None:
        """The full-jitter sleep before the next resend (``retries`` made so far, ``elapsed``
        seconds since the first send), or None once the budget is spent."""
        if elapsed >= self.max_retry_seconds:
            return None
        ceiling = min(self.max_delay_s,
                      self.base_delay_s * 2.0 ** min(retries, _MAX_BACKOFF_EXPONENT))
        return min(rng.uniform(0.0, ceiling), self.max_retry_seconds - elapsed)

    def exhausted(self, cause: tuple[str, str], elapsed: float) -> str:
        """The rejects-file reason of an item the budget ran out on (cause: what, error)."""
        return (f"not written: DynamoDB {cause[0]} for {elapsed:.0f} s ({cause[1]}); the retry "
                f"budget --max_retry_seconds={self.max_retry_seconds:g} is exhausted: lower "
                "--write_rate or raise --max_retry_seconds, then resume the run")


@dataclass
class WriteStats:
    """What the writer did; ``items_bounced`` counts items refused per attempt (unprocessed or
    throttled), ``throttled_retries`` the resends that throttling caused."""

    items_written: int = 0
    wcu_consumed: float = 0.0
    throttled_retries: int = 0
    items_bounced: int = 0
    requests: int = 0
    retryable_errors: int = 0


@dataclass(frozen=True)
class FailedWrite:
    """A row that was not written, and why."""

    request: WriteRequest
    reason: str


@dataclass
class WriteOutcome:
    """The result of :meth:`BatchWriter.write_all`.

    ``exhausted`` is True when the writer stopped early: a batch ran out of retry budget, or
    DynamoDB refused the requests themselves (access denied, table not found). The writer then
    consumed nothing after that batch; the caller reports the rest of the stream as not
    written. Every consumed row is either written or in ``failed``.
    """

    stats: WriteStats
    failed: list[FailedWrite] = field(default_factory=list)
    exhausted: bool = False


class _StopError(Exception):
    """A batch cannot finish: ``pending`` are its rows not written, ``reason`` says why."""

    def __init__(self, pending: list[WriteRequest], reason: str) -> None:
        super().__init__(reason)
        self.pending = pending
        self.reason = reason


@dataclass(slots=True)
class _Budget:
    """The retry state one batch shares with its one-item retries after a rejection."""

    started: float
    retries: int = 0


class _AcknowledgedPrefix:
    """Tracks ``n`` such that every stream position below ``n`` is written.

    Batches are opened in stream order and may close in any order, so this stays right with
    several batches in flight. A batch closing with an unwritten row fixes the prefix there.
    """

    __slots__ = ("_callback", "_closed", "_open", "_stalled", "value")

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self._callback = callback
        self._open: deque[int] = deque()  # end positions (exclusive), in stream order
        self._closed: dict[int, int | None] = {}  # end → first unwritten position, if any
        self._stalled = False
        self.value = 0

    def open(self, end: int) -> None:
        """A batch ending before ``end`` was sent."""
        self._open.append(end)

    def close(self, end: int, first_unwritten: int | None) -> None:
        """The batch ending before ``end`` is done; advance past every done batch in order."""
        self._closed[end] = first_unwritten
        advanced = self.value
        while self._open and self._open[0] in self._closed and not self._stalled:
            done = self._open.popleft()
            unwritten = self._closed.pop(done)
            if unwritten is None:
                advanced = done
            else:
                advanced, self._stalled = unwritten, True
        if advanced > self.value:
            self.value = advanced
            if self._callback is not None:
                self._callback(advanced)


class BatchWriter:
    """Writes a partition's stream of items to one table with BatchWriteItem.

    ``wcu_consumed`` adds up the ``ConsumedCapacity`` DynamoDB reports; an endpoint that omits
    it is charged the items' own ``wcu``. ``on_acknowledged(n)`` is called whenever the written
    prefix grows: every position below ``n`` is written (a failed row fixes ``n`` at its
    position). One batch is in flight at a time.
    """

    def __init__(self, transport: DynamoTransport, table: str, *,
                 policy: RetryPolicy = RetryPolicy(),
                 limiter: AdaptiveRateLimiter | None = None,
                 on_acknowledged: Callable[[int], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        self._transport = transport
        self._table = table
        self._policy = policy
        self._limiter = limiter
        self._on_acknowledged = on_acknowledged
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self.stats = WriteStats()  # the running write_all's counters, read by checkpoints

    def write_all(self, requests: Iterable[WriteRequest]) -> WriteOutcome:
        """Write every request; stop consuming ``requests`` after a batch that cannot finish."""
        self.stats = WriteStats()
        outcome = WriteOutcome(self.stats)
        prefix = _AcknowledgedPrefix(self._on_acknowledged)
        batch: list[WriteRequest] = []
        keys: set[tuple[str, ...]] = set()
        size = 0
        for request in requests:
            # A repeated key or the size limit closes the batch before this request; the item
            # count closes it right after the 25th, so no request is read ahead needlessly.
            if batch and (request.key in keys or size + request.size > MAX_BATCH_BYTES):
                if not self._write_batch(batch, outcome, prefix):
                    outcome.failed.append(FailedWrite(
                        request, "not written: the partition stopped before this row was sent, "
                                 f"after an earlier batch failed ({outcome.failed[-1].reason})"))
                    return outcome
                batch, keys, size = [], set(), 0
            batch.append(request)
            keys.add(request.key)
            size += request.size
            if len(batch) == MAX_BATCH_ITEMS:
                if not self._write_batch(batch, outcome, prefix):
                    return outcome
                batch, keys, size = [], set(), 0
        if batch:
            self._write_batch(batch, outcome, prefix)
        return outcome

    def _write_batch(self, batch: list[WriteRequest], outcome: WriteOutcome,
                     prefix: _AcknowledgedPrefix) -> bool:
        """Write one batch to the end; False (and ``outcome.exhausted``) when the writer stops."""
        end = batch[-1].position + 1
        prefix.open(end)
        failed_before = len(outcome.failed)
        try:
            self._settle(batch, outcome)
        except _StopError as stop:
            outcome.failed.extend(FailedWrite(r, stop.reason) for r in stop.pending)
            outcome.exhausted = True
        unwritten = outcome.failed[failed_before:]
        prefix.close(end, min(f.request.position for f in unwritten) if unwritten else None)
        return not outcome.exhausted

    def _settle(self, batch: list[WriteRequest], outcome: WriteOutcome) -> None:
        """Send a batch until each item is written or rejected; raise :class:`_StopError` if not."""
        budget = _Budget(self._clock())
        rejection = self._send(batch, budget, outcome.stats)
        if rejection is None:
            return
        pending, err = rejection
        if len(pending) > 1 and err.item_level:
            # AWS rejects the whole batch for one bad item: send them singly to find it.
            for index, single in enumerate(pending):
                try:
                    rejection = self._send([single], budget, outcome.stats)
                except _StopError as stop:
                    raise _StopError(stop.pending + pending[index + 1:], stop.reason) from None
                if rejection is not None:
                    self._reject(pending[index:], rejection[1], outcome)
            return
        self._reject(pending, err, outcome)

    @staticmethod
    def _reject(pending: list[WriteRequest], err: BatchRejectedError,
                outcome: WriteOutcome) -> None:
        """Record an item-level rejection of ``pending[0]``, or stop on any other refusal."""
        if not err.item_level:
            raise _StopError(pending, (
                f"not written: DynamoDB refused the request ({err}); fix the cause "
                "(permissions, table, credentials), then resume the run"))
        outcome.failed.append(FailedWrite(pending[0], f"rejected by DynamoDB: {err}"))

    def _send(self, pending: list[WriteRequest], budget: _Budget,
              stats: WriteStats) -> tuple[list[WriteRequest], BatchRejectedError] | None:
        """Send until every item is acknowledged (None) or DynamoDB rejects the request."""
        limiter = self._limiter
        while True:
            if limiter is not None:
                limiter.acquire(sum(r.wcu for r in pending))
            stats.requests += 1
            try:
                response = self._transport.batch_write_item(self._body(pending))
            except ThrottledError as err:
                stats.items_bounced += len(pending)
                throttled, cause = True, ("throttled", err.code)
            except RetryableError as err:
                stats.retryable_errors += 1
                throttled, cause = False, ("kept failing", str(err))
            except BatchRejectedError as err:
                return pending, err
            else:
                pending = self._acknowledge(pending, response, stats)
                if not pending:
                    if limiter is not None:
                        limiter.on_success()
                    return None
                stats.items_bounced += len(pending)
                throttled, cause = True, ("returned items unprocessed",
                                          "UnprocessedItems: throughput exceeded")
            if throttled and limiter is not None:
                limiter.on_throttle()
            self._back_off(budget, pending, cause)
            if throttled:
                stats.throttled_retries += 1

    def _body(self, pending: list[WriteRequest]) -> dict[str, Any]:
        return {"RequestItems": {self._table: [{"PutRequest": {"Item": r.item}} for r in pending]},
                "ReturnConsumedCapacity": "TOTAL"}

    def _acknowledge(self, pending: list[WriteRequest], response: dict[str, Any],
                     stats: WriteStats) -> list[WriteRequest]:
        """Count what the response acknowledged; return the requests still to send."""
        unprocessed = response.get("UnprocessedItems")
        still = _unprocessed_requests(pending, unprocessed) if unprocessed else []
        consumed = response.get("ConsumedCapacity")
        if consumed is not None:
            stats.wcu_consumed += sum(float(c.get("CapacityUnits") or 0.0) for c in consumed)
        elif still:
            stats.wcu_consumed += sum(r.wcu for r in pending if r not in still)
        else:
            stats.wcu_consumed += sum(r.wcu for r in pending)
        stats.items_written += len(pending) - len(still)
        return still

    def _back_off(self, budget: _Budget, pending: list[WriteRequest],
                  cause: tuple[str, str]) -> None:
        """Sleep a full-jitter backoff, or raise :class:`_StopError` once the budget is spent."""
        elapsed = self._clock() - budget.started
        delay = self._policy.backoff(elapsed, budget.retries, self._rng)
        if delay is None:
            raise _StopError(pending, self._policy.exhausted(cause, elapsed))
        budget.retries += 1
        self._sleep(delay)


def _unprocessed_requests(pending: list[WriteRequest],
                          unprocessed: dict[str, list[dict[str, Any]]]) -> list[WriteRequest]:
    """The pending requests whose items came back in ``UnprocessedItems`` (compared by value).

    Should the endpoint return an item we did not send, every pending request is kept:
    putting an item twice is harmless, losing it is not.
    """
    returned = [w.get("PutRequest", {}).get("Item") for ws in unprocessed.values() for w in ws]
    still: list[WriteRequest] = []
    for request in pending:
        for index, item in enumerate(returned):
            if item == request.item:
                del returned[index]
                still.append(request)
                break
    return list(pending) if returned else still
