"""The dispatcher: start a table's queued files while its limits allow.

It runs when a file is queued (the trigger), when a load ends (the callback, the Lambda
path's finish) and on a schedule (the sweep), possibly several at once: every start is a
claim in the ledger (:meth:`dynamo_ingest.control.queue.TableQueue.claim`), so two
dispatchers never start one file twice, nor two files where the policy allows one.

Order policy, per table:

- ``serial`` (default): one file at a time, in arrival order, and never before an earlier
  upload whose event has not arrived yet (S3 delivers events late and out of order). The
  table ends as if the files had been applied one after another in upload order.
- ``parallel``: up to ``max_running`` files at once, still started in arrival order. Only for
  files whose keys never overlap, or that carry ``--version_column`` (the newer row wins
  whatever the order): with overlapping keys and no version, the last write wins.

Glue's own ``MaxConcurrentRuns`` is enforced by Glue: a start it refuses
(``ConcurrentRunsExceededException``) puts the file back in the queue; the next load that
ends, or the sweep, dispatches it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from dynamo_ingest.control.ledger import Ledger, LedgerRecord, SourceObject
from dynamo_ingest.control.queue import (
    QueuedFile,
    QueueSnapshot,
    TableQueue,
    event_time_text,
    start_claim,
)
from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError, LedgerConflictError

LOG = logging.getLogger(__name__)
OrderPolicy = Literal["serial", "parallel"]
ORDER_POLICIES: tuple[OrderPolicy, ...] = ("serial", "parallel")
# A claim lost to another dispatcher means re-reading the queue; a few rounds settle it.
_ROUNDS = 5


@dataclass(frozen=True)
class StartOutcome:
    """What starting one file did: ``started`` (with its run and engine), ``limited`` (the
    engine's concurrency is full: the file waits) or ``failed`` (an error a person fixes)."""

    outcome: Literal["started", "limited", "failed"]
    run_id: str | None = None
    engine: str | None = None
    reason: str | None = None


# Starts one claimed file (its record holds the arguments and size); the one place is
# trigger_lambda.routing.start_load, wired in by the dispatcher's entry point.
StartFile = Callable[[LedgerRecord], StartOutcome]
# Asks the dispatcher to start the next queued files of a table (a load just ended).
Wake = Callable[[str], None]
# The uploads already in S3 but not yet in the ledger, uploaded no later than an arrival.
EarlierUploads = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class DispatchPolicy:
    """How many files of one table may load at once, and in which order."""

    order: OrderPolicy = "serial"
    max_running: int = 1

    def __post_init__(self) -> None:
        if self.order not in ORDER_POLICIES:
            raise ArgumentError(f"the upload order policy must be one of {ORDER_POLICIES}, "
                                f"found {self.order!r}")
        if self.max_running < 1:
            raise ArgumentError(f"max_running expects at least 1 file at a time, found "
                                f"{self.max_running}")

    @property
    def slots(self) -> int:
        """Files of one table that may be loading at once."""
        return 1 if self.order == "serial" else self.max_running


@dataclass
class DispatchResult:
    """What one dispatch did, file by file."""

    table: str
    started: list[tuple[str, str]] = field(default_factory=list)  # (file, run id)
    requeued: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    held: str | None = None  # why the head of the queue waits
    lost_races: int = 0

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form (handler results, logs)."""
        return {"table": self.table, "started": self.started, "requeued": self.requeued,
                "failed": self.failed, "held": self.held, "lost_races": self.lost_races}


def _candidates(snapshot: QueueSnapshot, policy: DispatchPolicy) -> list[QueuedFile]:
    free = policy.slots - len(snapshot.active)
    return snapshot.waiting[:max(0, free)]


def _hold_reason(file: QueuedFile, policy: DispatchPolicy,
                 earlier_uploads: EarlierUploads | None) -> str | None:
    if policy.order != "serial" or earlier_uploads is None:
        return None
    pending = earlier_uploads(file.arrival)
    if not pending:
        return None
    return (f"{file.source.uri} waits for {len(pending)} earlier upload(s) whose S3 event has "
            f"not arrived yet (e.g. {pending[0]}); their event, or the sweep, queues them")


def dispatch(queue: TableQueue, start: StartFile, policy: DispatchPolicy, *,
             earlier_uploads: EarlierUploads | None = None) -> DispatchResult:
    """Start the table's queued files while its policy allows: read the queue → claim the
    next files → start each claimed file."""
    result = DispatchResult(queue.table)
    claim = start_claim(f"dispatch-{uuid.uuid4().hex[:12]}")
    for _ in range(_ROUNDS):
        snapshot = queue.snapshot()
        candidates = _candidates(snapshot, policy)
        if not candidates:
            return result
        for file in candidates:
            result.held = _hold_reason(file, policy, earlier_uploads)
            if result.held is not None:
                LOG.info("%s", result.held)
                return result
            try:
                claimed = queue.claim(snapshot, file, claim)
            except LedgerConflictError as err:
                LOG.info("%s: another dispatcher moved first (%s); reading the queue again",
                         file.source.uri, err)
                result.lost_races += 1
                break  # the snapshot is stale: read the queue again
            if not _start_claimed(queue, claimed, start, result):
                return result  # the engine is full: the others wait too
    return result


def _start_claimed(queue: TableQueue, record: LedgerRecord, start: StartFile,
                   result: DispatchResult) -> bool:
    """Start one claimed file and record how it went; False when the engine is full."""
    source = record.source
    try:
        outcome = start(record)
    except DynamoIngestError as err:
        outcome = StartOutcome("failed", reason=str(err))
    if outcome.outcome == "started" and outcome.run_id:
        try:
            queue.ledger.mark_started(source, outcome.run_id, record.arguments, outcome.engine)
        except DynamoIngestError:
            # The run is going; the job's own job_started() confirms it in the ledger.
            LOG.exception("%s: run %s started but recording it failed", source.uri,
                          outcome.run_id)
        result.started.append((source.uri, outcome.run_id))
        LOG.info("%s: started run %s (%s)", source.uri, outcome.run_id, outcome.engine)
        return True
    reason = outcome.reason or "not started"
    if outcome.outcome == "limited":
        queue.requeue(source, reason)
        result.requeued.append(source.uri)
        LOG.info("%s stays queued: %s", source.uri, reason)
        return False
    queue.ledger.mark_not_started(source, reason, concurrency_limited=False)
    result.failed.append((source.uri, reason))
    LOG.error("%s: %s", source.uri, reason)
    return True


@dataclass(frozen=True)
class Upload:
    """An object under the incoming prefix that the ledger does not know yet."""

    source: SourceObject
    last_modified: str  # as an S3 event time (event_time_text)
    size: int | None = None  # as stored (routes its start: the loader Lambda or Glue)


class SweepError(DynamoIngestError):
    """The sweep could not list the incoming prefix."""


def unannounced_uploads(s3: Any, ledger: Ledger, bucket: str, prefix: str,
                        suffixes: Iterable[str]) -> list[Upload]:
    """Objects under ``prefix`` (with one of ``suffixes``) that have no ledger record: their
    S3 event is late, lost, or was never sent. Oldest first."""
    endings = tuple(s.lower() for s in suffixes)
    found: list[Upload] = []
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                key = str(obj["Key"])
                if not key.lower().endswith(endings):
                    continue
                source = SourceObject(bucket, key, str(obj["ETag"]))
                if ledger.get(source) is None:
                    found.append(Upload(source, event_time_text(obj["LastModified"]),
                                        int(obj["Size"]) if "Size" in obj else None))
    except ClientError as err:
        raise SweepError(f"listing s3://{bucket}/{prefix} failed: {err}; check the bucket "
                         "and the dispatcher's s3:ListBucket permission") from err
    return sorted(found, key=lambda u: (u.last_modified, u.source.key))


def earlier_than(uploads: Sequence[Upload]) -> EarlierUploads:
    """The uploads (of :func:`unannounced_uploads`) that may precede an arrival. S3's
    ``LastModified`` counts whole seconds, so one in the arrival's second may be earlier."""
    def earlier(arrival: str) -> list[str]:
        second = arrival[:19]
        return [u.source.uri for u in uploads if u.last_modified[:19] <= second]
    return earlier


def dispatcher_wake(lambda_: Any, function_name: str) -> Wake | None:
    """Wake the dispatcher function asynchronously when a load ends (the callback's and the
    loader Lambda's finish); a failed wake-up is logged, not raised: the file's load is already
    finished, and the scheduled sweep dispatches the queue. None: no dispatcher function."""
    if not function_name:
        return None

    def wake(table: str) -> None:
        try:
            lambda_.invoke(FunctionName=function_name, InvocationType="Event",
                           Payload=json.dumps({"dispatch": table}).encode("utf-8"))
        except (ClientError, BotoCoreError):
            LOG.exception("could not wake dispatcher %s for table %s: the sweep will",
                          function_name, table)
    return wake
