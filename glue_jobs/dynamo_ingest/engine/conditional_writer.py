"""The writer of the conditional write modes: one PutItem or UpdateItem per item, several in
flight, with the batch writer's retries, backoff, pacing and acknowledged prefix.

BatchWriteItem takes no conditions, so ``--write_mode insert`` (put only when absent),
``merge`` (UpdateItem SET of the row's attributes, other stored attributes kept) and the
version guard (``--version_column``: write only when the stored version is not newer) send
single-item requests. A failed condition is not an error: the item is counted as skipped
(``items_skipped_existing`` or ``items_skipped_stale``), and DynamoDB charges it the larger
of the stored and the new item's write units.
"""

from __future__ import annotations

import bisect
import random
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotocoreConnectionError

from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.keys import KeySchema
from dynamo_ingest.engine.items import canonical_number
from dynamo_ingest.engine.rate import AdaptiveRateLimiter
from dynamo_ingest.engine.sizing import item_size, write_units
from dynamo_ingest.engine.transport import (
    BatchRejectedError,
    RetryableError,
    ThrottledError,
    TransportError,
    error_from_client_error,
    shared_client,
)
from dynamo_ingest.engine.writer import (
    FailedWrite,
    RetryPolicy,
    WriteOutcome,
    WriteRequest,
    WriteStats,
    _AcknowledgedPrefix,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ConditionalMode = Literal["insert", "merge", "overwrite"]
DEFAULT_CONCURRENCY = 8
# A single-item write that meets a transaction on the same item fails with this; it is
# transient (AWS: "retry the request").
TRANSACTION_CONFLICT = "TransactionConflictException"
Item = dict[str, dict[str, Any]]


class ConditionFailedError(TransportError):
    """The write's condition was false; ``item`` is the stored item (ALL_OLD), if returned."""

    def __init__(self, message: str, item: Item | None) -> None:
        super().__init__("ConditionalCheckFailedException", message)
        self.item = item


class ConditionalTransport(Protocol):
    """Sends one PutItem or UpdateItem request."""

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a full PutItem body; raise a :class:`TransportError` subclass on failure."""
        ...

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send a full UpdateItem body; raise a :class:`TransportError` subclass on failure."""
        ...


class BotocoreConditionalTransport:
    """PutItem/UpdateItem over a botocore DynamoDB client that neither validates nor retries."""

    __slots__ = ("_client",)

    def __init__(self, client: DynamoDBClient) -> None:
        self._client = client

    @classmethod
    def from_config(cls, endpoint_url: str | None, region: str | None,
                    credentials: tuple[str, str, str | None] | None,
                    max_pool_connections: int = DEFAULT_CONCURRENCY + 2,
                    ) -> BotocoreConditionalTransport:
        """The transport over the per-process client the batch transport also uses."""
        return cls(shared_client(endpoint_url, region, credentials, max_pool_connections))

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one PutItem."""
        return self._call(self._client.put_item, request)

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one UpdateItem."""
        return self._call(self._client.update_item, request)

    @staticmethod
    def _call(operation: Callable[..., Any], request: dict[str, Any]) -> dict[str, Any]:
        try:
            return cast("dict[str, Any]", operation(**request))
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code") or "")
            if code == "ConditionalCheckFailedException":
                stored = cast("Item | None", cast("dict[str, Any]", err.response).get("Item"))
                raise ConditionFailedError(str(error.get("Message") or ""), stored) from err
            if code == TRANSACTION_CONFLICT:
                raise RetryableError(code, str(error.get("Message") or "")) from err
            raise error_from_client_error(err) from err
        except (BotocoreConnectionError, HTTPClientError) as err:
            raise RetryableError(type(err).__name__, str(err)) from err
        except BotoCoreError as err:  # no credentials, bad region: nothing a resend fixes
            raise BatchRejectedError(type(err).__name__, str(err)) from err


@dataclass
class ConditionalWriteOutcome(WriteOutcome):
    """A :class:`WriteOutcome` plus the items whose condition kept the stored item."""

    items_skipped_existing: int = 0  # insert mode: the key already held another item
    items_skipped_stale: int = 0  # version guard: the stored version is newer


@dataclass(frozen=True)
class RequestBuilder:
    """Builds the PutItem/UpdateItem body of one item for a mode and an optional version."""

    table: str
    key_schema: KeySchema
    mode: ConditionalMode
    version_attribute: str | None = None

    def __post_init__(self) -> None:
        if self.mode == "insert" and self.version_attribute is not None:
            raise ArgumentError("--version_column has no effect with --write_mode insert: "
                                "drop it, or use overwrite or merge")
        if self.mode == "overwrite" and self.version_attribute is None:
            raise ArgumentError("--write_mode overwrite without --version_column needs no "
                                "condition: use the BatchWriteItem writer")
        if self.version_attribute in self.key_schema.names:
            raise ArgumentError(f"--version_column {self.version_attribute!r} is a key "
                                "attribute, which never changes: name a non-key column")

    def body(self, item: Item) -> tuple[str, dict[str, Any]]:
        """``("put_item" | "update_item", request body)`` for one item."""
        names = {"#pk": self.key_schema.partition.name}
        values: dict[str, Any] = {}
        if self.mode == "insert":
            condition = "attribute_not_exists(#pk)"
        elif self.version_attribute is not None:
            names["#v"] = self.version_attribute
            values[":v"] = item[self.version_attribute]
            # A stored item without a version counts as older than any.
            condition = "attribute_not_exists(#pk) OR attribute_not_exists(#v) OR #v <= :v"
        else:
            condition = ""
        common: dict[str, Any] = {"TableName": self.table, "ReturnConsumedCapacity": "TOTAL"}
        if condition:
            common["ConditionExpression"] = condition
            common["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if self.mode != "merge":
            return "put_item", {**common, "Item": item, "ExpressionAttributeNames": names,
                                **({"ExpressionAttributeValues": values} if values else {})}
        keys = self.key_schema.names
        assignments = []
        for index, (name, value) in enumerate(a for a in item.items() if a[0] not in keys):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            assignments.append(f"#a{index} = :a{index}")
        if not assignments:
            # A key-only row: nothing to set, only make sure the item exists. (An UpdateItem
            # without UpdateExpression would do; moto answers it with HTTP 500.)
            return "put_item", {**common, "Item": item,
                                "ExpressionAttributeNames": {"#pk": names["#pk"]},
                                "ConditionExpression": "attribute_not_exists(#pk)",
                                "ReturnValuesOnConditionCheckFailure": "NONE"}
        if not condition:
            del names["#pk"]
        body = {**common, "Key": {k: item[k] for k in keys},
                "UpdateExpression": "SET " + ", ".join(assignments),
                "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
        return "update_item", body


class _StopError(Exception):
    """The request cannot be written and the writer stops: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConditionalWriter:
    """Writes a partition's stream of items with single conditional requests, several at once.

    Same contract as :class:`dynamo_ingest.engine.writer.BatchWriter`: every consumed request is
    written, skipped by its condition or in ``outcome.failed``; after a request that cannot
    finish (retry budget spent, or DynamoDB refusing the requests themselves) no further
    request is consumed and ``exhausted`` is set. ``on_acknowledged(n)``: every position
    below ``n`` is done (written or skipped); :meth:`skipped_before` tells how many of them
    were skipped. Like the batch writer's, the callback runs on the thread that consumes
    ``requests``, never on a sending thread. Pacing is per request (its item's WCU).
    """

    def __init__(self, transport: ConditionalTransport, requests: RequestBuilder, *,
                 policy: RetryPolicy = RetryPolicy(),
                 limiter: AdaptiveRateLimiter | None = None,
                 on_acknowledged: Callable[[int], None] | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None) -> None:
        if concurrency < 1:
            raise ArgumentError(f"a writer needs at least 1 request in flight, found {concurrency}")
        self._transport = transport
        self._requests = requests
        self._policy = policy
        self._limiter = limiter
        self._on_acknowledged = on_acknowledged
        self._concurrency = concurrency
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()  # outcome, prefix and skip bookkeeping
        self._pace_lock = threading.Lock()  # the limiter is not thread-safe
        self._skipped: dict[int, bool] = {}  # position → stale (True) or existing (False)
        # Skipped positions below the acknowledged prefix, ascending, with the running count
        # of stale ones (8 + 8 bytes per skipped item).
        self._final_positions = array("q")
        self._final_stale = array("q")
        self._ready: int | None = None  # a grown prefix for the consuming thread to report
        self.stats = WriteStats()  # the running write_all's counters, read by checkpoints

    def write_all(self, requests: Iterable[WriteRequest]) -> ConditionalWriteOutcome:
        """Write every request; stop consuming ``requests`` after one that cannot finish."""
        self.stats = WriteStats()
        outcome = ConditionalWriteOutcome(self.stats)
        prefix = _AcknowledgedPrefix(self._acknowledged)
        slots = threading.BoundedSemaphore(self._concurrency)
        errors: list[BaseException] = []
        self._skipped = {}
        self._final_positions = array("q")
        self._final_stale = array("q")
        self._ready = None

        def finished(future: Future[None]) -> None:
            slots.release()
            error = future.exception()
            if error is not None:
                errors.append(error)

        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="dynamo-write") as pool:
            for request in requests:
                slots.acquire()
                if outcome.exhausted or errors:
                    slots.release()
                    self._stopped_before(request, outcome)
                    break
                with self._lock:
                    prefix.open(request.position + 1)
                self._pace(request.wcu)
                pool.submit(self._write_one, request, outcome, prefix).add_done_callback(finished)
                self._report_acknowledged()
        self._report_acknowledged()
        if errors:
            raise errors[0]
        return outcome

    def _stopped_before(self, request: WriteRequest, outcome: ConditionalWriteOutcome) -> None:
        """A request read from the stream after the writer stopped: reported, never dropped."""
        with self._lock:
            cause = outcome.failed[-1].reason if outcome.failed else "a request failed"
            outcome.failed.append(FailedWrite(
                request, "not written: the partition stopped before this row was sent, after "
                         f"an earlier request failed ({cause})"))

    def skipped_before(self, position: int) -> tuple[int, int]:
        """(existing, stale): the skipped items below ``position``, which must not exceed the
        last prefix reported to ``on_acknowledged``."""
        with self._lock:
            count = bisect.bisect_left(self._final_positions, position)
            stale = self._final_stale[count - 1] if count else 0
        return count - stale, stale

    def _acknowledged(self, prefix: int) -> None:
        """Runs under ``_lock`` when the prefix grows: the skips below it are final."""
        stale = self._final_stale[-1] if self._final_stale else 0
        for position in sorted(p for p in self._skipped if p < prefix):
            stale += self._skipped.pop(position)
            self._final_positions.append(position)
            self._final_stale.append(stale)
        self._ready = prefix

    def _report_acknowledged(self) -> None:
        """Call ``on_acknowledged`` with the latest prefix, if it grew (consuming thread)."""
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None and self._on_acknowledged is not None:
            self._on_acknowledged(ready)

    def _pace(self, wcu: int) -> None:
        if self._limiter is not None:
            with self._pace_lock:
                self._limiter.acquire(wcu)

    def _write_one(self, request: WriteRequest, outcome: ConditionalWriteOutcome,
                   prefix: _AcknowledgedPrefix) -> None:
        """Send one request until it is written, skipped or given up; close its position."""
        end = request.position + 1
        try:
            failure = self._settle(request, outcome)
        except _StopError as stop:
            with self._lock:
                outcome.failed.append(FailedWrite(request, stop.reason))
                outcome.exhausted = True
                prefix.close(end, request.position)
            return
        with self._lock:
            if failure is not None:
                outcome.failed.append(FailedWrite(request, failure))
            prefix.close(end, request.position if failure is not None else None)

    def _settle(self, request: WriteRequest, outcome: ConditionalWriteOutcome) -> str | None:
        """Send until done; the reason when DynamoDB rejects this item (None when written or
        skipped); raise :class:`_StopError` when the writer must stop."""
        operation, body = self._requests.body(request.item)
        # Spelled out (not getattr) so the IAM check can see both operations in the code.
        send = (self._transport.update_item if operation == "update_item"
                else self._transport.put_item)
        stats = outcome.stats
        started = self._clock()
        retries = 0
        while True:
            if retries:
                self._pace(request.wcu)
            with self._lock:
                stats.requests += 1
            try:
                response = send(body)
            except ConditionFailedError as failed:
                self._skip(request, failed.item, outcome)
                return None
            except ThrottledError as err:
                with self._lock:
                    stats.items_bounced += 1
                self._on_throttle()
                cause = ("throttled", err.code)
                throttled = True
            except RetryableError as err:
                with self._lock:
                    stats.retryable_errors += 1
                cause = ("kept failing", str(err))
                throttled = False
            except BatchRejectedError as err:
                if err.item_level:
                    return f"rejected by DynamoDB: {err}"
                raise _StopError(
                    f"not written: DynamoDB refused the request ({err}); fix the cause "
                    "(permissions, table, credentials), then resume the run") from None
            else:
                consumed = (response.get("ConsumedCapacity") or {}).get("CapacityUnits")
                with self._lock:
                    stats.items_written += 1
                    stats.wcu_consumed += (float(consumed) if consumed is not None
                                           else float(request.wcu))
                if self._limiter is not None:
                    with self._pace_lock:
                        self._limiter.on_success()
                return None
            self._back_off(started, retries, cause)
            retries += 1
            if throttled:
                with self._lock:
                    stats.throttled_retries += 1

    def _skip(self, request: WriteRequest, stored: Item | None,
              outcome: ConditionalWriteOutcome) -> None:
        """Count a false condition: an identical stored item is ours (a resumed attempt
        re-sends what the previous one wrote), so it counts as written."""
        # AWS charges a failed condition the larger of the stored and the new item.
        wcu = max(request.wcu, write_units(item_size(stored))) if stored else request.wcu
        with self._lock:
            outcome.stats.wcu_consumed += wcu
            if self._requests.mode == "merge" and self._requests.version_attribute is None:
                outcome.stats.items_written += 1  # a key-only row whose item exists: merged
            elif stored is not None and same_item(stored, request.item):
                outcome.stats.items_written += 1
            elif self._requests.mode == "insert":
                outcome.items_skipped_existing += 1
                self._skipped[request.position] = False
            else:
                outcome.items_skipped_stale += 1
                self._skipped[request.position] = True

    def _on_throttle(self) -> None:
        if self._limiter is not None:
            with self._pace_lock:
                self._limiter.on_throttle()

    def _back_off(self, started: float, retries: int, cause: tuple[str, str]) -> None:
        """Sleep a full-jitter backoff, or raise :class:`_StopError` once the budget is spent."""
        elapsed = self._clock() - started
        delay = self._policy.backoff(elapsed, retries, self._rng)
        if delay is None:
            raise _StopError(self._policy.exhausted(cause, elapsed))
        self._sleep(delay)


def same_item(stored: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    """True when two low-level items hold the same values (numbers compared by value, sets
    in any order), as DynamoDB normalises numbers it stores (``1.50`` comes back ``1.5``)."""
    return stored.keys() == item.keys() and all(
        _same_value(stored[name], item[name]) for name in item)


def _same_value(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    ((kind, left),) = a.items()
    ((other_kind, right),) = b.items()
    if kind != other_kind:
        return False
    if kind == "N":
        return canonical_number(str(left)) == canonical_number(str(right))
    if kind == "NS":
        return sorted(map(_canonical, left)) == sorted(map(_canonical, right))
    if kind in ("SS", "BS"):
        return sorted(map(bytes_or_text, left)) == sorted(map(bytes_or_text, right))
    if kind == "M":
        return same_item(left, right)
    if kind == "L":
        return len(left) == len(right) and all(map(_same_value, left, right))
    return bool(bytes_or_text(left) == bytes_or_text(right))


def _canonical(text: Any) -> str:
    return canonical_number(str(text)) or str(text)


def bytes_or_text(value: Any) -> Any:
    """Binary values as bytes whatever buffer type holds them; other values unchanged."""
    return bytes(value) if isinstance(value, bytearray | memoryview) else value
