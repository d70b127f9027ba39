"""The per-table queue in the ledger: every accepted file waits here, in arrival order, until
the dispatcher (:mod:`dynamo_ingest.control.dispatch`) starts it.

Items (beside the run records, in the same control table):

- ``queue#<table>`` / ``entry#<arrival>``: one entry per file of the table that is not
  finished yet, sorted by arrival (one Query reads the queue in order). An entry only points
  at its file's run record; the record's status is the truth.
- ``queue#<table>`` / ``state``: a version that every claim bumps in the same transaction as
  the file it claims. Two dispatchers that read the same queue cannot both claim from it: the
  second claim's condition on the version fails, and it re-reads.

Arrival order is S3's: the event's time (milliseconds), then its sequencer (which orders
events of one key), then the key. A file found by the sweep before its event arrived gets
its object's ``LastModified`` instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from dynamo_ingest.control.ledger import (
    ACTIVE_STATUSES,
    NOT_STARTED_STATUSES,
    TERMINAL_STATUSES,
    Lease,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
    control_item,
    utc_now,
)
from dynamo_ingest.core.errors import LedgerConflictError

LOG = logging.getLogger(__name__)
QUEUE_PREFIX = "queue#"
ENTRY_PREFIX = "entry#"
STATE_RECORD = "state"
# S3 sequencers are hexadecimal of varying length: compared left-padded to one width.
SEQUENCER_WIDTH = 32
# A dispatcher claims a file (RECEIVED), and the callback or the loader its retry or
# continuation (RETRYING), only for the seconds it takes to start it; a claim older than this
# belongs to a claimant that died (a Lambda lives at most 15 minutes).
CLAIM_S = 900.0
# Who holds a claim in each claimed state (for the sweep's message).
CLAIMANTS = {LedgerStatus.RECEIVED: "its dispatcher",
             LedgerStatus.RETRYING: "the callback or loader starting its next run"}


def start_claim(claimant: str) -> Lease:
    """A claim on a file's start held by this process (``claimant`` names it in the sweep's
    message), valid for :data:`CLAIM_S`."""
    return Lease.for_this_process(claimant, duration_s=CLAIM_S)


def queue_id(table: str) -> str:
    """The partition key of ``table``'s queue items."""
    return f"{QUEUE_PREFIX}{table}"


def event_time_text(moment: datetime) -> str:
    """A time as S3 events write it (``2024-05-01T12:00:00.123Z``), which sorts as it reads."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def arrival_key(event_time: str | None, sequencer: str | None, source: SourceObject) -> str:
    """A file's place in its table's queue: S3's event time, sequencer, then key and ETag
    (unique, and sorting in upload order)."""
    when = event_time or utc_now()
    return f"{when}#{(sequencer or '').rjust(SEQUENCER_WIDTH, '0')}#{source.uri}#{source.etag}"


@dataclass(frozen=True)
class QueuedFile:
    """One entry of the queue and its file's run record (None: not written yet)."""

    arrival: str
    source: SourceObject
    record: LedgerRecord | None

    @property
    def status(self) -> LedgerStatus | None:
        """The file's ledger status."""
        return None if self.record is None else self.record.status


@dataclass(frozen=True)
class QueueSnapshot:
    """The queue of one table as read at one moment: its state version, and its unfinished
    files in arrival order."""

    table: str
    version: int
    files: tuple[QueuedFile, ...]

    @property
    def active(self) -> list[QueuedFile]:
        """Files being started or loaded (each holds one of the table's load slots)."""
        return [f for f in self.files if f.status in ACTIVE_STATUSES]

    @property
    def waiting(self) -> list[QueuedFile]:
        """QUEUED files, first to start first."""
        return [f for f in self.files if f.status == LedgerStatus.QUEUED]


class TableQueue:
    """The queue of one target table, read and written through the ledger."""

    def __init__(self, ledger: Ledger, table: str) -> None:
        self.ledger = ledger
        self.table = table

    def _entry(self, arrival: str, source: SourceObject) -> dict[str, Any]:
        return control_item({"object_id": queue_id(self.table), "record": ENTRY_PREFIX + arrival,
                             "kind": "queue", "bucket": source.bucket, "key": source.key,
                             "etag": source.etag, "queued_at": utc_now()})

    def enqueue(self, source: SourceObject, arrival: str, arguments: Mapping[str, str], *,
                size: int | None = None) -> LedgerRecord:
        """Accept a new file (QUEUED, with the ``arguments`` its run gets and its stored
        ``size``, which routes its start), atomically with its queue entry; a file whose first
        start failed is queued again. Raises
        :class:`LedgerConflictError` for a file the ledger knows otherwise (a duplicate event)."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None:
                return LedgerRecord(source=source, status=LedgerStatus.QUEUED,
                                    received_at=utc_now(), file_location=source.uri,
                                    arguments=dict(arguments), target_table=self.table,
                                    arrival=arrival, size=size)
            if current.status in NOT_STARTED_STATUSES and current.attempts == 0:
                return replace(current, status=LedgerStatus.QUEUED, target_table=self.table,
                               arrival=current.arrival or arrival, claim=None,
                               size=current.size if size is None else size)
            raise LedgerConflictError(
                f"{source.uri} (ETag {source.etag}) is already in the ledger as "
                f"{current.status}: a repeated event, nothing to queue")
        return self.ledger.update(source, change,
                                  also=lambda new: [{"Item": self._entry(new.arrival or arrival,
                                                                         source)}])

    def requeue(self, source: SourceObject, reason: str,
                arguments: Mapping[str, str] | None = None, *,
                dead_claim: Lease | None = None) -> LedgerRecord:
        """Put a file being started (RECEIVED) or retried (RETRYING) back in the queue: the
        start was refused for concurrency, or its claimant died. ``arguments``: the ones
        its next run gets (a retry's); ``dead_claim``: only while the file still holds that
        claim (a second sweep must not take back the fresh claim of the first's dispatcher)."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None or current.status not in CLAIMANTS:
                raise LedgerConflictError(f"{source.uri}: expected RECEIVED or RETRYING to "
                                          f"queue again, found "
                                          f"{'no record' if current is None else current.status}")
            if dead_claim is not None and current.claim != dead_claim:
                raise LedgerConflictError(f"{source.uri}: its claim changed since the sweep "
                                          f"found it dead; left to its new claimant")
            return replace(current, status=LedgerStatus.QUEUED, error=reason, claim=None,
                           target_table=current.target_table or self.table,
                           arguments=dict(arguments) if arguments else current.arguments)

        def entry(new: LedgerRecord) -> list[dict[str, Any]]:
            return [{"Item": self._entry(new.arrival or arrival_key(None, None, source),
                                         source)}]
        return self.ledger.update(source, change, also=entry)

    def snapshot(self) -> QueueSnapshot:
        """The queue now. The state version is read first, so every claim made before the
        records were read is seen in them. Entries of finished files are dropped."""
        state = self.ledger.get_control_item(queue_id(self.table), STATE_RECORD)
        version = int(state["version"]) if state else 0
        files: list[QueuedFile] = []
        for item in self.ledger.query_control_items(queue_id(self.table), ENTRY_PREFIX):
            source = SourceObject(str(item["bucket"]), str(item["key"]), str(item["etag"]))
            record = self.ledger.get(source)
            arrival = str(item["record"])[len(ENTRY_PREFIX):]
            if record is not None and (record.status in TERMINAL_STATUSES
                                       or (record.arrival and record.arrival != arrival)):
                # Finished, or a second entry of one file (the sweep's and its event's).
                self.ledger.delete_control_item(queue_id(self.table), str(item["record"]))
                continue
            files.append(QueuedFile(arrival, source, record))
        return QueueSnapshot(self.table, version, tuple(files))

    def claim(self, snapshot: QueueSnapshot, file: QueuedFile, claim: Lease) -> LedgerRecord:
        """QUEUED → RECEIVED for the dispatcher holding ``claim``, in one transaction with the
        queue's state version, conditional on the version ``snapshot`` read.
        :class:`LedgerConflictError` when the file or the queue moved on since."""
        def change(current: LedgerRecord | None) -> LedgerRecord:
            if current is None or current.status != LedgerStatus.QUEUED:
                raise LedgerConflictError(
                    f"{file.source.uri}: expected QUEUED to start, found "
                    f"{'no record' if current is None else current.status}")
            return replace(current, status=LedgerStatus.RECEIVED, claim=claim, error=None)

        def state(_: LedgerRecord) -> list[dict[str, Any]]:
            item = control_item({"object_id": queue_id(self.table), "record": STATE_RECORD,
                                 "kind": "queue_state", "version": snapshot.version + 1,
                                 "updated_at": utc_now()})
            if snapshot.version == 0:
                return [{"Item": item, "ConditionExpression": "attribute_not_exists(object_id)"}]
            return [{"Item": item, "ConditionExpression": "#version = :version",
                     "ExpressionAttributeNames": {"#version": "version"},
                     "ExpressionAttributeValues": {":version": {"N": str(snapshot.version)}}}]
        return self.ledger.update(file.source, change, also=state)

    def release_dead_claims(self, snapshot: QueueSnapshot, now: float | None = None) -> int:
        """Queue again the files whose claimant died between claiming and starting their run:
        a dispatcher's first start (RECEIVED), or the callback's or the loader's next run
        (RETRYING: its checkpoints, attempts and the retry's arguments are kept, so the
        restarted run resumes). Returns how many."""
        now = time.time() if now is None else now
        released = 0
        for file in snapshot.files:
            record = file.record
            if record is None or record.status not in CLAIMANTS or record.claim is None:
                continue
            dead = record.claim.dead_because(now)
            if dead is None:
                continue
            try:
                self.requeue(file.source, f"{CLAIMANTS[record.status]} "
                                          f"({record.claim.describe(now)}) stopped before "
                                          f"starting it: {dead}", dead_claim=record.claim)
                released += 1
            except LedgerConflictError:
                continue  # it moved on meanwhile
        return released


@dataclass(frozen=True)
class TableOverview:
    """A table's files by queue state (for ``dynamo-ingest status``)."""

    table: str
    queued: tuple[LedgerRecord, ...]
    running: tuple[LedgerRecord, ...]
    done: tuple[LedgerRecord, ...]
    failed: tuple[LedgerRecord, ...]
    not_started: tuple[LedgerRecord, ...]


def record_table(record: LedgerRecord) -> str:
    """The table a record's file loads into (a manual run's from its arguments)."""
    return record.target_table or record.arguments.get("--target_table", "") or "(unknown)"


def table_overviews(records: Iterable[LedgerRecord]) -> list[TableOverview]:
    """Every table's files by state, oldest first in each state."""
    by_table: dict[str, list[LedgerRecord]] = {}
    for record in records:
        by_table.setdefault(record_table(record), []).append(record)
    overviews = []
    for table, rows in sorted(by_table.items()):
        rows.sort(key=lambda r: r.arrival or r.received_at or "")
        overviews.append(TableOverview(
            table,
            queued=tuple(r for r in rows if r.status == LedgerStatus.QUEUED),
            running=tuple(r for r in rows if r.status in ACTIVE_STATUSES),
            done=tuple(r for r in rows if r.status in (LedgerStatus.SUCCEEDED,
                                                       LedgerStatus.SUCCEEDED_WITH_REJECTS)),
            failed=tuple(r for r in rows if r.status == LedgerStatus.FAILED),
            not_started=tuple(r for r in rows if r.status in NOT_STARTED_STATUSES)))
    return overviews
