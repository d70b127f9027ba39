"""The job's view of the ledger: its run record on the driver, per-partition checkpoints in
the tasks. A thin adapter so the pipeline knows nothing about DynamoDB."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from dynamo_ingest.aws import AwsConfig
from dynamo_ingest.errors import LedgerConflictError
from dynamo_ingest.ledger import Ledger, LedgerTableError, SourceObject
from dynamo_ingest.pipeline import Checkpoint, PartitionTask
from dynamo_ingest.storage import ResolvedSource

LOG = logging.getLogger(__name__)


@dataclass
class LedgerSession:
    """The driver's handle on one source object's ledger record."""

    ledger: Ledger
    source: SourceObject

    @classmethod
    def open(cls, aws: AwsConfig, table: str, source: ResolvedSource, *,
             create: bool) -> LedgerSession:
        """Open the ledger (creating the table first on an emulator, where ``init`` may not
        have run); on AWS a missing table is an error that says to deploy it."""
        ledger = Ledger(aws.client("dynamodb"), table)
        if create:
            ledger.ensure_table()
        return cls(ledger, SourceObject(source.bucket, source.key, source.etag))

    def job_started(self, job_run_id: str) -> int:
        """Record this run as started; returns its attempt number."""
        return self.ledger.job_started(self.source, job_run_id).attempts

    def resume_plan(self, fresh_partitions: int, job_run_id: str,
                    fingerprint: str) -> tuple[int, int]:
        """(partition count, partitions still to write): an unfinished earlier run's count,
        which a resume must reuse, or ``fresh_partitions`` when there is nothing to resume.

        Checkpoints written under other arguments (another target table, key or mapping) are
        dropped: resuming them would skip rows that were never written the way this run writes.
        """
        record = self.ledger.get(self.source)
        checkpoints = self.ledger.load_checkpoints(self.source)
        earlier = record.load_fingerprint if record is not None else None
        if checkpoints and earlier != fingerprint:
            LOG.warning("%s: the checkpoints of an unfinished earlier run were written with "
                        "other arguments (target table, key or mapping): starting over",
                        self.source.uri)
            self.ledger.clear_checkpoints(self.source)
            checkpoints = {}
        self.ledger.set_load_fingerprint(self.source, job_run_id, fingerprint)
        if not checkpoints:
            return fresh_partitions, fresh_partitions
        partitions = next(iter(checkpoints.values())).partitions
        done = sum(1 for c in checkpoints.values()
                   if c.partitions == partitions and int(c.counts.get("done", 0)))
        return partitions, max(1, partitions - done)

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

    def record_report(self, job_run_id: str, report: dict[str, Any]) -> None:
        """Store the run report's counts in the ledger for the callback and `status`."""
        try:
            self.ledger.record_report(self.source, job_run_id, report)
        except LedgerConflictError as err:
            LOG.warning("run report not recorded: %s", err)


class LedgerCheckpointStore:
    """Checkpoints of one source object's partitions, read and written from a Spark task."""

    def __init__(self, ledger: Ledger, source: SourceObject, partitions: int) -> None:
        self._ledger = ledger
        self._source = source
        self._partitions = partitions

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
        except LedgerTableError as err:
            # A lost checkpoint only means a resume rewrites a little more; never fail the
            # load for it.
            LOG.warning("checkpoint of partition %d not saved: %s", partition, err)


def checkpoint_store(task: PartitionTask) -> LedgerCheckpointStore | None:
    """The task's checkpoint store, or None when the run has no ledger."""
    if not task.ledger_table or task.source_key is None:
        return None
    ledger = Ledger(task.aws.client("dynamodb"), task.ledger_table)
    return LedgerCheckpointStore(ledger, SourceObject(*task.source_key), task.partitions)


__all__ = ["LedgerCheckpointStore", "LedgerSession", "LedgerTableError", "checkpoint_store"]
