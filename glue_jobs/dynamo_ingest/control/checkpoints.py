"""The job's view of the ledger: its run record on the driver, per-partition checkpoints in
the tasks. A thin adapter so the pipeline knows nothing about DynamoDB."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dynamo_ingest.control.failure_streak import FailureStreak
from dynamo_ingest.control.finish import finish_run
from dynamo_ingest.control.ledger import (
    HEARTBEAT_S,
    Lease,
    Ledger,
    LedgerRecord,
    LedgerTableError,
    SourceObject,
)
from dynamo_ingest.control.storage import ResolvedSource
from dynamo_ingest.core.aws import AwsConfig, EndpointUnreachableError
from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError
from dynamo_ingest.core.report import RowCounts

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    """Where a partition stands: its first ``rows_done`` rows are final (written, rejected or
    duplicate) with these counts; ``positions_done`` items of its write stream are written."""

    rows_done: int
    positions_done: int
    items_written: int
    rows_rejected: int
    duplicate_rows: int
    wcu_consumed: float = 0.0
    done: bool = False
    items_skipped_existing: int = 0
    items_skipped_stale: int = 0

    def as_counts(self) -> dict[str, int | float]:
        """The mapping stored in the ledger."""
        return {"rows_done": self.rows_done, "positions_done": self.positions_done,
                "items_written": self.items_written, "rows_rejected": self.rows_rejected,
                "duplicate_rows": self.duplicate_rows, "wcu_consumed": self.wcu_consumed,
                "done": int(self.done), "items_skipped_existing": self.items_skipped_existing,
                "items_skipped_stale": self.items_skipped_stale}

    @classmethod
    def from_counts(cls, counts: dict[str, Any]) -> Checkpoint:
        """Inverse of :meth:`as_counts`."""
        return cls(int(counts["rows_done"]), int(counts["positions_done"]),
                   int(counts["items_written"]), int(counts["rows_rejected"]),
                   int(counts["duplicate_rows"]), float(counts.get("wcu_consumed", 0)),
                   bool(int(counts.get("done", 0))),
                   int(counts.get("items_skipped_existing", 0)),
                   int(counts.get("items_skipped_stale", 0)))


@dataclass(frozen=True)
class ResumePlan:
    """How a run continues the file: the partition count, the partitions still to write,
    what the checkpoints held when it began, and why earlier checkpoints were dropped."""

    partitions: int
    unfinished: int
    prior: Mapping[int, Checkpoint] = field(default_factory=dict)
    discarded: str | None = None


@dataclass
class LedgerSession:
    """The driver's handle on one source object's ledger record."""

    ledger: Ledger
    source: SourceObject
    _heartbeat: _Heartbeat | None = None

    @classmethod
    def open(cls, aws: AwsConfig, table: str, source: ResolvedSource, *,
             create: bool) -> LedgerSession:
        """Open the ledger (creating the table first on an emulator, where ``init`` may not
        have run); on AWS a missing table is an error that says to deploy it."""
        ledger = Ledger(aws.client("dynamodb"), table)
        if create:
            ledger.ensure_table()
        return cls(ledger, SourceObject(source.bucket, source.key, source.etag))

    def job_started(self, job_run_id: str, arguments: Mapping[str, str]) -> int:
        """Record this run as started with the arguments that reproduce it, take the file's
        lease and keep it renewed until :meth:`release`; returns the attempt number.
        :class:`~dynamo_ingest.control.ledger.LoadInProgressError` when a live run holds it."""
        record = self.ledger.job_started(self.source, job_run_id, arguments,
                                         Lease.for_this_process(job_run_id))
        self._heartbeat = _Heartbeat(self.ledger, self.source, job_run_id)
        self._heartbeat.start()
        return record.attempts

    def resume_plan(self, fresh_partitions: int, job_run_id: str, fingerprint: str,
                    table: str) -> ResumePlan:
        """An unfinished earlier run's partition count (a resume must reuse it), or
        ``fresh_partitions`` when there is nothing to resume.

        Checkpoints written under other arguments (another target table, key or mapping), or
        into another instance of the target table (deleted and created again since), are
        dropped: resuming them would skip rows that are not in the table this run writes.
        """
        record = self.ledger.get(self.source)
        checkpoints = self.ledger.load_checkpoints(self.source)
        discarded = _discard_reason(record, checkpoints, fingerprint, table)
        if discarded is not None:
            LOG.warning("%s: %s", self.source.uri, discarded)
            self.ledger.clear_checkpoints(self.source)
            checkpoints = {}
        self.ledger.set_load_fingerprint(self.source, job_run_id, fingerprint, table)
        if not checkpoints:
            return ResumePlan(fresh_partitions, fresh_partitions, discarded=discarded)
        partitions = next(iter(checkpoints.values())).partitions
        prior = {p: Checkpoint.from_counts(dict(c.counts)) for p, c in checkpoints.items()
                 if c.partitions == partitions}
        done = sum(1 for c in prior.values() if c.done)
        return ResumePlan(partitions, max(1, partitions - done), prior)

    def clear_checkpoints(self) -> None:
        """Forget earlier progress (``--restart`` or after a finished load)."""
        self.ledger.clear_checkpoints(self.source)

    def items_written(self) -> int:
        """Items written so far according to the checkpoints (for the progress bar)."""
        return sum(int(c.counts.get("items_written", 0))
                   for c in self.ledger.load_checkpoints(self.source).values())

    def file_counts(self, partitions: int) -> dict[str, int | float] | None:
        """The whole file's counts over every attempt, from the partitions' done checkpoints
        (each carries the counts of its earlier attempts); None unless all are done."""
        found = [Checkpoint.from_counts(dict(c.counts))
                 for c in self.ledger.load_checkpoints(self.source).values()
                 if c.partitions == partitions]
        if len(found) != partitions or not all(c.done for c in found):
            return None
        return {"rows_read": sum(c.rows_done for c in found),
                "items_written": sum(c.items_written for c in found),
                "rows_rejected": sum(c.rows_rejected for c in found),
                "duplicate_rows": sum(c.duplicate_rows for c in found),
                "wcu_consumed": round(sum(c.wcu_consumed for c in found), 1)}

    def progress(self, partitions: int) -> dict[int, Checkpoint]:
        """The checkpoints of this load's partitions now (what an interrupted run reports)."""
        return {p: Checkpoint.from_counts(dict(c.counts))
                for p, c in self.ledger.load_checkpoints(self.source).items()
                if c.partitions == partitions}

    def record_report(self, job_run_id: str, report: dict[str, Any], *,
                      finish: bool) -> None:
        """Stop the heartbeat, store the run report's counts (releasing the lease) for the
        callback and `status`; with ``finish``, also set the final state, as the callback
        does for a run of the event flow."""
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            self.ledger.record_report(self.source, job_run_id, report)
            if finish:
                finish_run(self.ledger, self.source, job_run_id,
                           succeeded=report.get("status") != "FAILED", error=report.get("error"))
        except LedgerConflictError as err:
            LOG.warning("run report not recorded: %s", err)


def table_instance(table: Mapping[str, Any]) -> str:
    """Which instance of a table a DescribeTable ``Table`` describes: its ``TableId``, or
    (where an emulator has none) its ARN with its creation time. A table deleted and created
    again under the same name is another instance, and holds none of the rows written before.
    """
    if table.get("TableId"):
        return str(table["TableId"])
    created: Any = table.get("CreationDateTime")
    stamp = created.isoformat() if isinstance(created, datetime) else str(created)
    return f"{table.get('TableArn') or table.get('TableName')}@{stamp}"


def counts_since(before: Checkpoint | None, now: Checkpoint) -> RowCounts:
    """What one run did in a partition between the checkpoint it resumed from (``before``)
    and its latest one: the rows up to ``before`` count as skipped by resume, so the
    identity rows_read = written + rejected + duplicates + skipped holds."""
    base = before or Checkpoint(0, 0, 0, 0, 0)
    return RowCounts(
        rows_read=now.rows_done, rows_skipped_by_resume=base.rows_done,
        items_written=now.items_written - base.items_written,
        rows_rejected=now.rows_rejected - base.rows_rejected,
        duplicate_rows=now.duplicate_rows - base.duplicate_rows,
        items_skipped_existing=now.items_skipped_existing - base.items_skipped_existing,
        items_skipped_stale=now.items_skipped_stale - base.items_skipped_stale,
        wcu_consumed=round(now.wcu_consumed - base.wcu_consumed, 1))


def _discard_reason(record: LedgerRecord | None, checkpoints: Mapping[int, Any],
                    fingerprint: str, table: str) -> str | None:
    """Why the checkpoints of an earlier run cannot be resumed by this one, or None."""
    if not checkpoints or record is None:
        return None
    if record.load_fingerprint != fingerprint:
        return ("the checkpoints of an unfinished earlier run were written with other "
                "arguments (target table, key or mapping): starting over")
    if record.load_table != table:
        return (f"the checkpoints of an unfinished earlier run were written into another "
                f"instance of the target table ({record.load_table or 'unknown'}; it is now "
                f"{table}, deleted and created again since): starting over")
    return None


class _Heartbeat:
    """Renews a run's lease every ``HEARTBEAT_S`` from a driver thread while the run lives."""

    def __init__(self, ledger: Ledger, source: SourceObject, job_run_id: str) -> None:
        self._ledger = ledger
        self._source = source
        self._run_id = job_run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (before the lease is released)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        streak = FailureStreak(LOG, f"renewing the run's lease of {self._source.uri}")
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._ledger.renew_lease(self._source, self._run_id,
                                         Lease.for_this_process(self._run_id))
            except LedgerConflictError as err:
                LOG.error("lease lost: %s", err)
                return
            except DynamoIngestError as err:
                # One missed renewal leaves LEASE_S - HEARTBEAT_S to spare; keep trying.
                streak.failed(err, f"retrying every {HEARTBEAT_S:g} s")
            else:
                streak.succeeded()
        streak.ended()


class LedgerCheckpointStore:
    """Checkpoints of one source object's partitions, read and written from a Spark task."""

    def __init__(self, ledger: Ledger, source: SourceObject, partitions: int) -> None:
        self._ledger = ledger
        self._source = source
        self._partitions = partitions
        self._lost = FailureStreak(LOG, f"saving checkpoints of {source.uri}")

    def load(self, partition: int) -> Checkpoint | None:
        """The partition's last checkpoint, if an earlier attempt left one."""
        found = self._ledger.load_checkpoints(self._source).get(partition)
        if found is None or found.partitions != self._partitions:
            return None
        return Checkpoint.from_counts(dict(found.counts))

    def save(self, partition: int, checkpoint: Checkpoint) -> None:
        """Record progress; a Spark task retry that is behind an earlier attempt is ignored."""
        try:
            self._ledger.save_checkpoint(self._source, partition, checkpoint.positions_done,
                                         checkpoint.as_counts(), self._partitions)
        except LedgerConflictError as err:
            LOG.info("checkpoint not saved: %s", err)
        except (LedgerTableError, EndpointUnreachableError) as err:
            # A lost checkpoint only means a resume rewrites a little more; never fail the
            # load for it (the writes say for themselves whether the endpoint is gone).
            self._lost.failed(err, f"partition {partition} and the others go on without")
        else:
            self._lost.succeeded()


def checkpoint_store(aws: AwsConfig, ledger_table: str | None,
                     source_key: tuple[str, str, str] | None,
                     partitions: int) -> LedgerCheckpointStore | None:
    """A run's checkpoint store, or None when the run has no ledger."""
    if not ledger_table or source_key is None:
        return None
    ledger = Ledger(aws.client("dynamodb"), ledger_table)
    return LedgerCheckpointStore(ledger, SourceObject(*source_key), partitions)


__all__ = ["Checkpoint", "LedgerCheckpointStore", "LedgerSession", "LedgerTableError", "ResumePlan",
           "checkpoint_store", "counts_since", "table_instance"]
