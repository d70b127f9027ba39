"""The ledger: one DynamoDB control-table record per source object (bucket, key, ETag), the
state machine of its runs, and the job's resume checkpoints. Used by the job, both Lambdas
and the CLI; the record's shape lives only here.

Key design: partition key ``object_id`` = the object's URI (``s3://bucket/key``, or the
absolute path of a local file), sort key ``record`` = ``etag#<etag>`` for the run record and
``etag#<etag>#checkpoint#<partition:05d>`` for each partition's checkpoint. One Query reads a
file's history or one run's checkpoints; no index is needed.

Every change is read → check → ``PutItem`` conditional on the record's ``version`` (or on
its absence), so when two actors race exactly one write lands; the other re-reads, finds the
state moved on, and gets :class:`LedgerConflictError`.

A running job holds a :class:`Lease` on the record (taken in :meth:`Ledger.job_started`,
renewed by the driver's heartbeat, released when it reports): a second run of the same file
refuses while the holder may still be writing, and takes over only once it is provably dead.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError

LOG = logging.getLogger(__name__)


class LedgerTableError(DynamoIngestError):
    """The ledger table is missing, unreachable or has another key schema."""


class LoadInProgressError(DynamoIngestError):
    """Another run that may still be alive holds the file's lease."""


class LedgerStatus(StrEnum):
    """Where a source object stands."""

    QUEUED = "QUEUED"  # accepted; waits in its table's queue for the dispatcher
    RECEIVED = "RECEIVED"  # a dispatcher claimed the file (or the trigger recorded it) to start it
    STARTED = "STARTED"  # a run is going (``job_run_id``); ``attempts`` counts runs
    CONCURRENCY_LIMITED = "CONCURRENCY_LIMITED"  # StartJobRun hit MaxConcurrentRuns; retried
    START_FAILED = "START_FAILED"  # StartJobRun failed otherwise; retried, SNS was told
    RETRYING = "RETRYING"  # the callback (or the loader) claimed the next run and is starting it
    SUCCEEDED = "SUCCEEDED"
    SUCCEEDED_WITH_REJECTS = "SUCCEEDED_WITH_REJECTS"
    FAILED = "FAILED"


S = LedgerStatus
# Every status change the ledger allows (None: no record yet). Writes that keep the status
# (a report, a file location, a new run of a STARTED record) are always allowed.
ALLOWED_TRANSITIONS: Mapping[LedgerStatus | None, frozenset[LedgerStatus]] = {
    None: frozenset({S.QUEUED, S.RECEIVED, S.STARTED}),  # S3 event; a manual run's record
    # A dispatcher claims a queued file (RECEIVED); a manual run of a queued file starts it.
    S.QUEUED: frozenset({S.RECEIVED, S.STARTED}),
    # ConcurrentRunsExceeded (or a dead dispatcher's claim) puts the file back in the queue.
    S.RECEIVED: frozenset({S.QUEUED, S.STARTED, S.CONCURRENCY_LIMITED, S.START_FAILED}),
    S.CONCURRENCY_LIMITED: frozenset({S.QUEUED, S.RECEIVED, S.RETRYING, S.STARTED}),
    S.START_FAILED: frozenset({S.QUEUED, S.RECEIVED, S.RETRYING, S.STARTED}),
    S.STARTED: frozenset({S.RETRYING, S.SUCCEEDED, S.SUCCEEDED_WITH_REJECTS, S.FAILED}),
    # A retry Glue refuses for concurrency, or one whose claimant died before starting it
    # (the sweep), waits in the queue like a new file.
    S.RETRYING: frozenset({S.QUEUED, S.STARTED, S.CONCURRENCY_LIMITED, S.START_FAILED}),
    S.SUCCEEDED: frozenset({S.STARTED}),  # a manual re-run
    S.SUCCEEDED_WITH_REJECTS: frozenset({S.STARTED}),
    S.FAILED: frozenset({S.STARTED}),  # `dynamo-ingest retry`
}
TERMINAL_STATUSES = frozenset({S.SUCCEEDED, S.SUCCEEDED_WITH_REJECTS, S.FAILED})
NOT_STARTED_STATUSES = frozenset({S.CONCURRENCY_LIMITED, S.START_FAILED})
# A file in one of these holds one of its table's load slots (see control/queue.py).
ACTIVE_STATUSES = frozenset({S.RECEIVED, S.STARTED, S.RETRYING})

INT_COUNTS = ("rows_read", "items_written", "rows_rejected", "duplicate_rows",
              "rows_skipped_by_resume", "items_skipped_existing", "items_skipped_stale",
              "items_bounced", "throttled_retries")
FLOAT_COUNTS = ("wcu_consumed", "elapsed_s")
_CONFLICT_RETRIES = 5
# A run renews its lease every HEARTBEAT_S; one that misses LEASE_S of heartbeats is dead.
LEASE_S = 30.0
HEARTBEAT_S = 5.0


def utc_now() -> str:
    """The current time as ISO 8601 UTC (``2024-05-01T12:00:00.123456Z``); microseconds keep
    ``recent()``'s order among updates made in the same millisecond."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class SourceObject:
    """A source file's identity: bucket (``""`` for a local file), key (or path) and ETag."""

    bucket: str
    key: str
    etag: str

    def __post_init__(self) -> None:
        # HeadObject quotes ETags, S3 events do not: store one form.
        object.__setattr__(self, "etag", self.etag.strip('"'))

    @property
    def uri(self) -> str:
        """``s3://bucket/key``, or the local path."""
        return f"s3://{self.bucket}/{self.key}" if self.bucket else self.key

    @classmethod
    def from_uri(cls, uri: str, etag: str) -> SourceObject:
        """Build from ``s3://bucket/key`` or a local path."""
        if uri.startswith("s3://"):
            bucket, _, key = uri[len("s3://"):].partition("/")
            return cls(bucket, key, etag)
        return cls("", uri, etag)


def _run_sort_key(etag: str) -> str:
    return f"etag#{etag}"


def _checkpoint_prefix(etag: str) -> str:
    return f"etag#{etag}#checkpoint#"


def _to_attribute(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list | tuple):
        return {"L": [_to_attribute(v) for v in value]}
    if isinstance(value, Mapping):
        return {"M": {str(k): _to_attribute(v) for k, v in value.items()}}
    raise TypeError(f"cannot store {type(value).__name__} in the ledger")


def _from_attribute(attribute: Mapping[str, Any]) -> Any:
    (kind, value), = attribute.items()
    if kind == "N":
        number = Decimal(value)
        return int(number) if number == number.to_integral_value() and "." not in value \
            else float(number)
    if kind == "L":
        return [_from_attribute(v) for v in value]
    if kind == "M":
        return {k: _from_attribute(v) for k, v in value.items()}
    if kind == "NULL":
        return None
    return value


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _to_attribute(v) for k, v in values.items() if v is not None}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_attribute(v) for k, v in item.items()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@dataclass(frozen=True)
class Lease:
    """Which run is loading the file right now, where, and until when (epoch seconds) its
    holder promised to renew it."""

    run_id: str
    host: str
    pid: int
    expires_at: float
    renewed_at: float

    @classmethod
    def for_this_process(cls, run_id: str, duration_s: float = LEASE_S) -> Lease:
        """A lease for ``run_id`` held by this process, valid ``duration_s`` from now."""
        now = time.time()
        return cls(run_id, socket.gethostname(), os.getpid(), round(now + duration_s, 3),
                   round(now, 3))

    def dead_because(self, now: float) -> str | None:
        """Why the holder is provably dead (its lease expired, or its process on this host is
        gone), or None while it may still be loading."""
        if self.expires_at <= now:
            return f"its lease expired {now - self.expires_at:.0f} s ago"
        if self.host == socket.gethostname() and not _pid_alive(self.pid):
            return f"its process (pid {self.pid} on this host) is gone"
        return None

    def describe(self, now: float) -> str:
        """``run local-abc (pid 123 on host h, last heartbeat 3 s ago)``."""
        return (f"run {self.run_id} (pid {self.pid} on host {self.host}, last heartbeat "
                f"{max(0.0, now - self.renewed_at):.0f} s ago)")

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Lease:
        """From the ledger's map attribute."""
        return cls(str(value["run_id"]), str(value["host"]), int(value["pid"]),
                   float(value["expires_at"]), float(value["renewed_at"]))


@dataclass(frozen=True)
class LedgerRecord:
    """One source object's run record (the counts are those of ``report_job_run_id``)."""

    source: SourceObject
    status: LedgerStatus
    version: int = 0
    attempts: int = 0
    job_run_id: str | None = None
    job_run_ids: tuple[str, ...] = ()
    arguments: Mapping[str, str] = field(default_factory=dict)
    received_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str | None = None
    error: str | None = None
    file_location: str | None = None
    rejects_location: str | None = None
    report_job_run_id: str | None = None
    report_status: str | None = None
    report_retryable: bool = True  # False: that run's failure would repeat on a retry
    load_fingerprint: str | None = None  # the arguments the checkpoints were written under
    load_table: str | None = None  # the table instance (id or ARN@created) they were written into
    lease: Lease | None = None  # the run loading the file now (None: nobody)
    target_table: str | None = None  # the table whose queue the file waits in
    arrival: str | None = None  # its place in that queue (control/queue.py: arrival_key)
    # The dispatcher starting it (RECEIVED), or the callback or loader starting its retry
    # (RETRYING), until it is STARTED.
    claim: Lease | None = None
    size: int | None = None  # the object's stored size, from its S3 event (routes its start)
    engine: str | None = None  # the engine of the run: local (loader Lambda) or spark (Glue)
    engine_reason: str | None = None  # why that engine, in one line
    rows_read: int = 0
    items_written: int = 0
    rows_rejected: int = 0
    duplicate_rows: int = 0
    rows_skipped_by_resume: int = 0
    items_skipped_existing: int = 0
    items_skipped_stale: int = 0
    items_bounced: int = 0
    throttled_retries: int = 0
    wcu_consumed: float = 0.0
    elapsed_s: float = 0.0

    @property
    def object_id(self) -> str:
        """The partition key: the object's URI."""
        return self.source.uri

    def to_item(self) -> dict[str, Any]:
        """The DynamoDB item (AttributeValue form)."""
        values: dict[str, Any] = {"object_id": self.object_id,
                                  "record": _run_sort_key(self.source.etag), "kind": "run",
                                  "bucket": self.source.bucket, "key": self.source.key,
                                  "etag": self.source.etag}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if f.name == "job_run_ids":
                value = list(value)
            elif f.name == "arguments":
                value = dict(value) or None
            elif f.name in ("lease", "claim"):
                value = None if value is None else {
                    k: Decimal(str(v)) if isinstance(v, float) else v
                    for k, v in asdict(value).items()}
            elif f.name in FLOAT_COUNTS:
                value = Decimal(str(round(float(value), 3)))
            values[f.name] = value
        return _to_item(values)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> LedgerRecord:
        """Inverse of :meth:`to_item`."""
        raw = _from_item(item)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in raw.items() if k in known}
        values["source"] = SourceObject(raw["bucket"], raw["key"], raw["etag"])
        values["status"] = LedgerStatus(raw["status"])
        values["job_run_ids"] = tuple(raw.get("job_run_ids", ()))
        values["arguments"] = {str(k): str(v) for k, v in raw.get("arguments", {}).items()}
        values["lease"] = Lease.from_value(raw["lease"]) if raw.get("lease") else None
        values["claim"] = Lease.from_value(raw["claim"]) if raw.get("claim") else None
        for name in FLOAT_COUNTS:
            values[name] = float(values.get(name, 0.0))
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-able view (for ``dynamo-ingest status`` and error reports)."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"}
        data["status"] = str(self.status)
        data["job_run_ids"] = list(self.job_run_ids)
        data["arguments"] = dict(self.arguments)
        data["lease"] = None if self.lease is None else asdict(self.lease)
        data["claim"] = None if self.claim is None else asdict(self.claim)
        return {"object_id": self.object_id, "bucket": self.source.bucket,
                "key": self.source.key, "etag": self.source.etag, **data}


@dataclass(frozen=True)
class Checkpoint:
    """How far one partition of a run got: rows before ``position`` are acknowledged."""

    partition: int
    position: int
    partitions: int
    counts: Mapping[str, int | float]
    updated_at: str


def check_transition(current: LedgerStatus | None, new: LedgerStatus) -> None:
    """Raise :class:`LedgerConflictError` unless ``current → new`` is in the table."""
    if current == new and current is not None:
        return
    if new not in ALLOWED_TRANSITIONS[current]:
        raise LedgerConflictError(
            f"ledger status {current or 'absent'} cannot become {new}: another actor moved "
            "this file's record on; re-read it with `dynamo-ingest status`")


def _conflict(source: SourceObject, expected: str,
              record: LedgerRecord | None) -> LedgerConflictError:
    found = ("no record" if record is None else
             f"{record.status} (run {record.job_run_id}, attempt {record.attempts})")
    return LedgerConflictError(f"{source.uri} (ETag {source.etag}): expected {expected}, "
                               f"found {found}")


Change = Callable[[LedgerRecord | None], LedgerRecord | None]
# The other control items written in one transaction with a record (see Ledger.update).
AlsoWrite = Callable[[LedgerRecord], list[dict[str, Any]]]


def control_item(values: Mapping[str, Any]) -> dict[str, Any]:
    """Plain values as a DynamoDB item (AttributeValue form), for control items."""
    return _to_item(values)


class Ledger:
    """The control table: run records and checkpoints, read and written with one client."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._dynamodb = dynamodb_client
        self.table_name = table_name

    def _table_error(self, action: str, err: ClientError) -> LedgerTableError:
        error = err.response.get("Error", {})
        code = error.get("Code", "error")
        hint = ("create it with `dynamo-ingest init` or terraform"
                if code == "ResourceNotFoundException" else "check the table and permissions")
        return LedgerTableError(f"ledger table {self.table_name!r}: {action} failed with {code}: "
                                f"{error.get('Message', '')}; {hint}")

    # --- table -------------------------------------------------------------------------

    def ensure_table(self, timeout_s: float = 60.0) -> None:
        """Create the table (on-demand) unless it exists, then wait until it is ACTIVE."""
        try:
            self._dynamodb.create_table(
                TableName=self.table_name, BillingMode="PAY_PER_REQUEST",
                AttributeDefinitions=[{"AttributeName": "object_id", "AttributeType": "S"},
                                      {"AttributeName": "record", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "object_id", "KeyType": "HASH"},
                           {"AttributeName": "record", "KeyType": "RANGE"}])
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise self._table_error("CreateTable", err) from err
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                table = self._dynamodb.describe_table(TableName=self.table_name)["Table"]
            except ClientError as err:
                raise self._table_error("DescribeTable", err) from err
            keys = {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]}
            if keys != {("object_id", "HASH"), ("record", "RANGE")}:
                raise LedgerTableError(
                    f"ledger table {self.table_name!r}: expected key schema object_id (HASH) + "
                    f"record (RANGE), found {sorted(keys)}; pick another --ledger_table")
            if table.get("TableStatus") == "ACTIVE":
                return
            if time.monotonic() > deadline:
                raise LedgerTableError(f"ledger table {self.table_name!r} not ACTIVE after "
                                       f"{timeout_s:.0f}s (status {table.get('TableStatus')})")
            time.sleep(0.2)

    # --- run records -------------------------------------------------------------------

    def get(self, source: SourceObject) -> LedgerRecord | None:
        """The run record of ``source`` (strongly consistent), or None."""
        try:
            item = self._dynamodb.get_item(
                TableName=self.table_name, ConsistentRead=True,
                Key={"object_id": {"S": source.uri},
                     "record": {"S": _run_sort_key(source.etag)}}).get("Item")
        except ClientError as err:
            raise self._table_error("GetItem", err) from err
        return None if item is None else LedgerRecord.from_item(item)

    def _update(self, source: SourceObject, change: Change) -> LedgerRecord:
        """Apply ``change`` to the current record with a conditional write; on a lost race,
        re-read and re-check (the change raises when its precondition no longer holds)."""
        return self.update(source, change)

    def update(self, source: SourceObject, change: Change,
               also: AlsoWrite | None = None) -> LedgerRecord:
        """:meth:`_update`, writing ``also(new)``'s items (other control items, e.g. the
        table queue's) in the same transaction: all land or none. A failed condition of one
        of those items raises :class:`LedgerConflictError` (its state moved on: re-read it)."""
        for _ in range(_CONFLICT_RETRIES):
            current = self.get(source)
            new = change(current)
            if new is None:  # nothing to do (idempotent repeat)
                assert current is not None
                return current
            check_transition(None if current is None else current.status, new.status)
            new = replace(new, version=(current.version if current else 0) + 1,
                          updated_at=utc_now())
            condition: dict[str, Any] = (
                {"ConditionExpression": "attribute_not_exists(object_id)"} if current is None
                else {"ConditionExpression": "#version = :version",
                      "ExpressionAttributeNames": {"#version": "version"},
                      "ExpressionAttributeValues": {":version": {"N": str(current.version)}}})
            if self._write(source, new, condition, [] if also is None else also(new)):
                return new
        raise LedgerConflictError(f"{source.uri}: the ledger record kept changing under "
                                  f"{_CONFLICT_RETRIES} attempts to update it; try again")

    def _write(self, source: SourceObject, new: LedgerRecord, condition: dict[str, Any],
               also: list[dict[str, Any]]) -> bool:
        """Write the record (and ``also``); False when the record's own condition failed."""
        try:
            if not also:
                self._dynamodb.put_item(TableName=self.table_name, Item=new.to_item(),
                                        **condition)
                return True
            self._dynamodb.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table_name, "Item": new.to_item(), **condition}},
                *({"Put" if "Item" in item else "Delete":
                   {"TableName": self.table_name, **item}} for item in also)])
            return True
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code == "ConditionalCheckFailedException":
                return False
            if code == "TransactionCanceledException":
                reasons = [r.get("Code") for r in err.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                if "ConditionalCheckFailed" in reasons:
                    raise LedgerConflictError(
                        f"{source.uri}: another dispatcher changed the queue of its table "
                        "first; re-read the queue") from err
            action = "TransactWriteItems" if also else "PutItem"
            raise self._table_error(action, err) from err

    def put_control_item(self, item: Mapping[str, Any], *, condition: str | None = None,
                         values: Mapping[str, Any] | None = None) -> bool:
        """Put a control item that is not a run record (a queue entry, a write-budget lease);
        False when ``condition`` failed."""
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": dict(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = dict(values)
        try:
            self._dynamodb.put_item(**kwargs)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise self._table_error("PutItem", err) from err
        return True

    def get_control_item(self, object_id: str, record: str) -> dict[str, Any] | None:
        """A control item's attributes (plain values), strongly consistent; None if absent."""
        try:
            item = self._dynamodb.get_item(
                TableName=self.table_name, ConsistentRead=True,
                Key={"object_id": {"S": object_id}, "record": {"S": record}}).get("Item")
        except ClientError as err:
            raise self._table_error("GetItem", err) from err
        return None if item is None else _from_item(item)

    def query_control_items(self, object_id: str, prefix: str) -> list[dict[str, Any]]:
        """The control items under ``object_id`` whose ``record`` starts with ``prefix``, in
        ``record`` order (plain values)."""
        return [_from_item(i) for i in self._query(object_id, prefix)]

    def delete_control_item(self, object_id: str, record: str) -> None:
        """Delete a control item (absent is fine)."""
        try:
            self._dynamodb.delete_item(TableName=self.table_name,
                                       Key={"object_id": {"S": object_id},
                                            "record": {"S": record}})
        except ClientError as err:
            raise self._table_error("DeleteItem", err) from err

    def receive(self, source: SourceObject) -> LedgerRecord:
        """Record a new S3 object (RECEIVED); :class:`LedgerConflictError` if it is known."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is not None:
                raise _conflict(source, "no record (a new object)", current)
            now = utc_now()
            return LedgerRecord(source=source, status=S.RECEIVED, received_at=now,
                                file_location=source.uri)
        return self._update(source, change)

    def reclaim(self, source: SourceObject) -> LedgerRecord:
        """Take back a received object whose first run could not start (→ RECEIVED), so a
        re-delivered event starts it; :class:`LedgerConflictError` for any other state."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if (current is None or current.status not in NOT_STARTED_STATUSES
                    or current.attempts != 0):
                raise _conflict(source, "a first run that could not start", current)
            return replace(current, status=S.RECEIVED)
        return self._update(source, change)

    def mark_started(self, source: SourceObject, job_run_id: str,
                     arguments: Mapping[str, str], engine: str | None = None) -> LedgerRecord:
        """Record the run the dispatcher (RECEIVED) or the callback (RETRYING) just started
        (``engine``: what runs it), ending the dispatcher's claim."""
        def change(current: LedgerRecord | None) -> LedgerRecord | None:
            if current is not None and current.job_run_id == job_run_id:
                if current.claim is None and (engine is None or current.engine == engine):
                    return None  # the job confirmed its run first
                return replace(current, claim=None, engine=engine or current.engine)
            if current is None or current.status not in (S.RECEIVED, S.RETRYING):
                raise _conflict(source, "RECEIVED or RETRYING", current)
            return replace(_new_run(current, job_run_id, arguments=dict(arguments)),
                           claim=None, engine=engine or current.engine)
        return self._update(source, change)

    def mark_not_started(self, source: SourceObject, reason: str, *,
                         concurrency_limited: bool) -> LedgerRecord:
        """StartJobRun failed: CONCURRENCY_LIMITED or START_FAILED, so a re-delivery retries."""
        status = S.CONCURRENCY_LIMITED if concurrency_limited else S.START_FAILED

        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None or current.status not in (S.RECEIVED, S.RETRYING):
                raise _conflict(source, "RECEIVED or RETRYING", current)
            return replace(current, status=status, error=reason, claim=None)
        return self._update(source, change)

    def job_started(self, source: SourceObject, job_run_id: str,
                    arguments: Mapping[str, str] | None = None,
                    lease: Lease | None = None) -> LedgerRecord:
        """Called by the job: confirm the run the trigger/callback started, or record a new
        run (manual start, `dynamo-ingest run/retry`, a re-run after a kill) with the
        ``arguments`` that reproduce it; take ``lease``.

        :class:`LoadInProgressError` when another run holds a lease and may still be alive:
        two runs of one file must never share its checkpoints.
        """
        def change(current: LedgerRecord | None) -> LedgerRecord | None:
            _check_lease_free(source, current, job_run_id)
            if current is None:
                now = utc_now()
                return LedgerRecord(source=source, status=S.STARTED, attempts=1,
                                    job_run_id=job_run_id, job_run_ids=(job_run_id,),
                                    arguments=dict(arguments or {}), received_at=now,
                                    started_at=now, file_location=source.uri, lease=lease)
            if current.job_run_id == job_run_id and current.status == S.STARTED:
                if current.lease == lease or lease is None:
                    return None
                return replace(current, lease=lease)
            new = _new_run(current, job_run_id, arguments=dict(arguments) if arguments else None)
            return replace(new, lease=lease)
        return self._update(source, change)

    def renew_lease(self, source: SourceObject, job_run_id: str,
                    lease: Lease) -> LedgerRecord:
        """The heartbeat: extend the lease ``job_run_id`` holds; :class:`LedgerConflictError`
        when it lost it (another run took over after it looked dead)."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None or current.lease is None or current.lease.run_id != job_run_id:
                raise _conflict(source, f"run {job_run_id} to hold the lease", current)
            return replace(current, lease=lease)
        return self._update(source, change)

    def set_load_fingerprint(self, source: SourceObject, job_run_id: str,
                             fingerprint: str, table: str | None = None) -> LedgerRecord:
        """Record the arguments the current run writes its checkpoints under, and the
        instance of the target table it writes into (the job)."""
        def change(current: LedgerRecord | None) -> LedgerRecord | None:
            if current is None or current.job_run_id != job_run_id:
                raise _conflict(source, f"run {job_run_id} to be the current run", current)
            if current.load_fingerprint == fingerprint and current.load_table == table:
                return None
            return replace(current, load_fingerprint=fingerprint, load_table=table)
        return self._update(source, change)

    def record_report(self, source: SourceObject, job_run_id: str,
                      report: Mapping[str, Any]) -> LedgerRecord:
        """Store the run report's status, counts, error and rejects location, and release the
        run's lease (the job, as it ends)."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None or current.job_run_id != job_run_id:
                raise _conflict(source, f"run {job_run_id} to be the current run", current)
            counts: dict[str, Any] = {n: int(report.get(n) or 0) for n in INT_COUNTS}
            counts.update({n: float(report.get(n) or 0.0) for n in FLOAT_COUNTS})
            # The report names the rejects file only when the run wrote one. A run that
            # finished its load and rejected nothing removed an earlier run's file, so its
            # location goes too; a failed run left the files as they were.
            rejects = report.get("rejects_path")
            if not rejects and report.get("status") not in (S.SUCCEEDED,
                                                            S.SUCCEEDED_WITH_REJECTS):
                rejects = current.rejects_location
            return replace(current, report_job_run_id=job_run_id,
                           report_status=report.get("status"),
                           report_retryable=bool(report.get("retryable", True)),
                           # This attempt's error only: an earlier attempt's would read as its own.
                           error=report.get("error"),
                           rejects_location=rejects,
                           engine=report.get("engine") or current.engine,
                           engine_reason=report.get("engine_reason") or current.engine_reason,
                           lease=_released(current.lease, job_run_id), **counts)
        return self._update(source, change)

    def mark_retrying(self, source: SourceObject, failed_job_run_id: str, error: str, *,
                      claim: Lease | None = None,
                      arguments: Mapping[str, str] | None = None) -> LedgerRecord:
        """Claim the retry of ``failed_job_run_id`` (→ RETRYING): one callback wins.

        ``claim``: the claimant's, as a dispatcher's on RECEIVED, so that the sweep puts the
        file back in the queue if the claimant dies before the retry starts; ``arguments``:
        the ones the retry gets, which that re-queued start then uses."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if (current is None or current.job_run_id != failed_job_run_id
                    or current.status not in (S.STARTED, *NOT_STARTED_STATUSES)):
                raise _conflict(source, f"run {failed_job_run_id} STARTED (or waiting to be "
                                        "retried)", current)
            # Glue reported the failed run over: its lease, if it could not release it, is dead.
            return replace(current, status=S.RETRYING, error=error, claim=claim,
                           arguments=current.arguments if arguments is None else dict(arguments),
                           lease=_released(current.lease, failed_job_run_id))
        return self._update(source, change)

    def finish(self, source: SourceObject, job_run_id: str, *, succeeded: bool,
               error: str | None = None,
               rejects_location: str | None = None) -> LedgerRecord:
        """Run ``job_run_id`` ended: the one place that decides the file's final state, for
        the callback (event flow) and the job itself (a run nobody else finishes).

        Succeeded: SUCCEEDED, or SUCCEEDED_WITH_REJECTS when its report says so (the run
        report decides it, with its rejects file: no second rule here);
        else FAILED with ``error`` (or the report's). Stamps ``finished_at``, releases the
        lease and claims the file's move (one actor wins)."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if (current is None or current.job_run_id != job_run_id
                    or current.status != S.STARTED):
                raise _conflict(source, f"run {job_run_id} STARTED", current)
            reported = current.report_job_run_id == job_run_id
            if succeeded:
                rejected = reported and current.report_status == S.SUCCEEDED_WITH_REJECTS
                status = S.SUCCEEDED_WITH_REJECTS if rejected else S.SUCCEEDED
                final_error = None
            else:
                status = S.FAILED
                final_error = error or (current.error if reported else None) or "failed"
            return replace(current, status=status, finished_at=utc_now(), error=final_error,
                           lease=_released(current.lease, job_run_id),
                           rejects_location=rejects_location or current.rejects_location)
        return self._update(source, change)

    def file_moved(self, source: SourceObject, job_run_id: str, location: str) -> LedgerRecord:
        """Record where the file now is, after the actor that finished the run moved it."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if (current is None or current.job_run_id != job_run_id
                    or current.status not in TERMINAL_STATUSES):
                raise _conflict(source, f"run {job_run_id} finished", current)
            return replace(current, file_location=location)
        return self._update(source, change)

    def find(self, uri: str) -> LedgerRecord | None:
        """The latest record of the object at ``uri`` (any ETag), or of the file now moved
        there (``complete/…``, ``error/…``); None if the ledger never saw it."""
        records = self._query_runs(uri)
        if not records:
            records = [r for r in self._scan_runs() if r.file_location == uri]
        return max(records, key=lambda r: r.updated_at or "", default=None)

    def recent(self, limit: int | None = 20) -> list[LedgerRecord]:
        """The ``limit`` most recently updated run records (None: all), newest first."""
        # A Scan: the control table holds one small item per file (plus a few checkpoints
        # while a file loads), so reading it whole is cheap; a GSI on updated_at would be
        # the next step if it ever holds millions of files.
        records = sorted(self._scan_runs(), key=lambda r: r.updated_at or "", reverse=True)
        return records[:limit]

    def _query_runs(self, uri: str) -> list[LedgerRecord]:
        items = self._query(uri, "etag#")
        return [LedgerRecord.from_item(i) for i in items if i.get("kind", {}).get("S") == "run"]

    def _scan_runs(self) -> list[LedgerRecord]:
        records: list[LedgerRecord] = []
        kwargs: dict[str, Any] = {"TableName": self.table_name, "FilterExpression": "#kind = :run",
                                  "ExpressionAttributeNames": {"#kind": "kind"},
                                  "ExpressionAttributeValues": {":run": {"S": "run"}}}
        while True:
            try:
                page = self._dynamodb.scan(**kwargs)
            except ClientError as err:
                raise self._table_error("Scan", err) from err
            records += [LedgerRecord.from_item(i) for i in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return records
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _query(self, object_id: str, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table_name, "ConsistentRead": True,
            "KeyConditionExpression": "object_id = :id AND begins_with(#record, :prefix)",
            "ExpressionAttributeNames": {"#record": "record"},
            "ExpressionAttributeValues": {":id": {"S": object_id}, ":prefix": {"S": prefix}}}
        while True:
            try:
                page = self._dynamodb.query(**kwargs)
            except ClientError as err:
                raise self._table_error("Query", err) from err
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # --- checkpoints -------------------------------------------------------------------

    def save_checkpoint(self, source: SourceObject, partition: int, position: int,
                        counts: Mapping[str, int | float], partitions: int) -> None:
        """Record that ``partition`` acknowledged every row before ``position``; a checkpoint
        never moves back (:class:`LedgerConflictError` when another attempt is ahead)."""
        values = {"object_id": source.uri,
                  "record": f"{_checkpoint_prefix(source.etag)}{partition:05d}",
                  "kind": "checkpoint", "partition": partition, "position": position,
                  "partitions": partitions, "updated_at": utc_now(),
                  "counts": {k: Decimal(str(v)) if isinstance(v, float) else v
                             for k, v in counts.items()}}
        try:
            self._dynamodb.put_item(
                TableName=self.table_name, Item=_to_item(values),
                ConditionExpression="attribute_not_exists(object_id) OR #position <= :position",
                ExpressionAttributeNames={"#position": "position"},
                ExpressionAttributeValues={":position": {"N": str(position)}})
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise LedgerConflictError(
                    f"{source.uri}: partition {partition}'s checkpoint is already past row "
                    f"{position}; another attempt of this partition is ahead") from err
            raise self._table_error("PutItem", err) from err

    def load_checkpoints(self, source: SourceObject) -> dict[int, Checkpoint]:
        """Every partition's checkpoint of ``source``, by partition number."""
        checkpoints: dict[int, Checkpoint] = {}
        for item in self._query(source.uri, _checkpoint_prefix(source.etag)):
            raw = _from_item(item)
            checkpoints[int(raw["partition"])] = Checkpoint(
                partition=int(raw["partition"]), position=int(raw["position"]),
                partitions=int(raw["partitions"]), counts=dict(raw.get("counts", {})),
                updated_at=str(raw["updated_at"]))
        return checkpoints

    def clear_checkpoints(self, source: SourceObject) -> None:
        """Forget ``source``'s checkpoints (``--restart``, or after a finished load)."""
        for item in self._query(source.uri, _checkpoint_prefix(source.etag)):
            try:
                self._dynamodb.delete_item(
                    TableName=self.table_name,
                    Key={"object_id": item["object_id"], "record": item["record"]})
            except ClientError as err:
                raise self._table_error("DeleteItem", err) from err


def _new_run(current: LedgerRecord, job_run_id: str, *,
             arguments: Mapping[str, str] | None = None) -> LedgerRecord:
    """The record with one more run: ``job_run_id`` current, attempts + 1, STARTED (which
    ends any claim on its start: the run is going)."""
    return replace(current, status=S.STARTED, attempts=current.attempts + 1,
                   job_run_id=job_run_id, job_run_ids=(*current.job_run_ids, job_run_id),
                   started_at=utc_now(), finished_at=None, claim=None,
                   arguments=current.arguments if arguments is None else arguments)


def _released(lease: Lease | None, job_run_id: str) -> Lease | None:
    """The lease after ``job_run_id`` let go of it (another run's lease stays)."""
    return None if lease is not None and lease.run_id == job_run_id else lease


def _check_lease_free(source: SourceObject, current: LedgerRecord | None,
                      job_run_id: str) -> None:
    """Raise :class:`LoadInProgressError` while another run that may be alive holds the
    lease; log a take-over from a provably dead one."""
    lease = None if current is None else current.lease
    if lease is None or lease.run_id == job_run_id:
        return
    now = time.time()
    dead = lease.dead_because(now)
    if dead is None:
        raise LoadInProgressError(
            f"{source.uri} is being loaded by {lease.describe(now)}; wait for it to finish or "
            "stop it, then run again (a run killed on another host is taken over once its "
            f"lease expires, {lease.expires_at - now:.0f} s from now)")
    LOG.warning("%s: taking over from %s: %s", source.uri, lease.describe(now), dead)
