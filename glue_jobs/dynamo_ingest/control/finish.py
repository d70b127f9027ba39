"""The one finish of a file's run, whichever engine loaded it: the final state in the ledger
and, in the event flow, the file moved to ``complete/`` or ``error/`` (with an error report
beside a failed one) and SNS told.

Callers: the job for a run nobody else finishes (a manual run: ledger only), the callback
Lambda after Glue reports a run's end, and the loader Lambda after its in-process load. The
final state is claimed first with a conditional ledger write (:meth:`Ledger.finish`), so of two
actors finishing one run only one moves the file and sends the messages.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from dynamo_ingest.control.ledger import (
    INT_COUNTS,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
)
from dynamo_ingest.control.locations import BucketFolders, source_locations
from dynamo_ingest.control.s3_objects import MANAGED_COPY_THRESHOLD, move_object, put_json
from dynamo_ingest.core.errors import DynamoIngestError, SourceError

LOG = logging.getLogger(__name__)
ERROR_REPORT_SUFFIX = ".error.json"

FinishOutcome = Literal["succeeded", "succeeded_with_rejects", "failed"]


@dataclass(frozen=True)
class EventFlow:
    """What finishing a file of the event flow needs: its bucket's folders and who is told."""

    s3: Any
    sns: Any
    sns_topic_arn: str
    folders: BucketFolders = field(default_factory=BucketFolders)
    managed_copy_threshold: int = MANAGED_COPY_THRESHOLD

    def notify(self, subject: str, message: Mapping[str, Any]) -> None:
        """Publish to the topic; a failure is logged, never raised (the move stands)."""
        try:
            self.sns.publish(TopicArn=self.sns_topic_arn, Subject=subject,
                             Message=json.dumps(message, ensure_ascii=False, indent=2,
                                                default=str))
        except (ClientError, BotoCoreError, DynamoIngestError) as err:
            # One line (an unreachable endpoint is DynamoIngestError): the message is kept.
            LOG.error("could not publish to %s (%s): %s", self.sns_topic_arn, err, message)


@dataclass(frozen=True)
class Finished:
    """How a run ended: the claimed ledger record and where the file is now."""

    outcome: FinishOutcome
    record: LedgerRecord
    file_location: str | None


def counts_of(record: LedgerRecord) -> dict[str, Any]:
    """A record's counts as the SNS messages and error reports carry them."""
    counts: dict[str, Any] = {name: getattr(record, name) for name in INT_COUNTS}
    counts.update(wcu_consumed=record.wcu_consumed, elapsed_s=record.elapsed_s)
    return counts


def finish_run(ledger: Ledger, source: SourceObject, job_run_id: str, *, succeeded: bool,
               error: str | None = None, flow: EventFlow | None = None,
               details: Mapping[str, Any] | None = None) -> Finished:
    """Finish run ``job_run_id`` of ``source``: claim its final state (the ledger decides
    SUCCEEDED, SUCCEEDED_WITH_REJECTS or FAILED from the run's report), then, in the event
    ``flow``, move the file and tell SNS. ``details`` (who ran it, the engine, Glue's state)
    go into a failed file's error report and message.

    :class:`~dynamo_ingest.core.errors.LedgerConflictError` when another actor finished the
    run first; :class:`~dynamo_ingest.core.errors.SourceError` when the move failed (SNS was
    told)."""
    claimed = ledger.finish(source, job_run_id, succeeded=succeeded, error=error)
    outcome: FinishOutcome = (
        "failed" if claimed.status == LedgerStatus.FAILED else
        "succeeded_with_rejects" if claimed.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
        else "succeeded")
    if flow is None:
        return Finished(outcome, claimed, claimed.file_location)
    destination = _destination(source, flow.folders, succeeded=outcome != "failed")
    location = _move(ledger, claimed, destination, flow)
    if outcome == "failed":
        _report_failure(claimed, destination, location, flow, details or {})
    elif outcome == "succeeded_with_rejects":
        flow.notify("dynamo-ingest: rows rejected",
                    {"event": "loaded with rejected rows", "file": source.uri,
                     "file_location": location, "rejects_location": claimed.rejects_location,
                     "job_run_id": job_run_id, "engine": claimed.engine, **counts_of(claimed)})
        LOG.warning("%s loaded with %d rejected row(s): %s", source.uri, claimed.rows_rejected,
                    claimed.rejects_location)
    else:
        LOG.info("%s loaded by run %s; file now at %s", source.uri, job_run_id, location)
    return Finished(outcome, claimed, location)


def _destination(source: SourceObject, folders: BucketFolders, *,
                 succeeded: bool) -> str | None:
    """Where a finished file goes, or None when it is not ours to move (outside incoming/)."""
    if not source.bucket:
        return None
    locations = source_locations(source.bucket, source.key, folders)
    return locations.complete if succeeded else locations.error


def _move(ledger: Ledger, claimed: LedgerRecord, destination: str | None,
          flow: EventFlow) -> str:
    """Move the claimed file and record its new place; SNS + re-raise when the move fails."""
    source, job_run_id = claimed.source, claimed.job_run_id or ""
    if destination is None:
        LOG.info("%s is outside %s: left where it is", source.uri, flow.folders.incoming)
        return source.uri
    try:
        move_object(flow.s3, source.uri, destination, expected_etag=source.etag,
                    managed_copy_threshold=flow.managed_copy_threshold)
    except SourceError as err:
        flow.notify("dynamo-ingest: finished file could not be moved",
                    {"event": "file not moved", "file": source.uri, "destination": destination,
                     "job_run_id": job_run_id, "reason": str(err)})
        raise
    ledger.file_moved(source, job_run_id, destination)
    return destination


def _report_failure(claimed: LedgerRecord, destination: str | None, location: str,
                    flow: EventFlow, details: Mapping[str, Any]) -> None:
    """The error report beside the failed file, and the SNS message that carries it too."""
    source = claimed.source
    report: dict[str, Any] = {
        "file": source.uri, "etag": source.etag, "file_location": location,
        "status": str(claimed.status), **details, "error": claimed.error,
        "job_run_id": claimed.job_run_id, "engine": claimed.engine,
        "attempts": claimed.attempts, "job_run_ids": list(claimed.job_run_ids),
        "rejects_location": claimed.rejects_location, "finished_at": claimed.finished_at,
        "counts": counts_of(claimed)}
    report_uri = None
    if destination is not None:
        try:
            report_uri = put_json(flow.s3, destination + ERROR_REPORT_SUFFIX, report)
        except DynamoIngestError as err:  # a SourceError, or the endpoint unreachable
            # The SNS message below carries the same report; do not let this hide it.
            LOG.error("could not write the error report beside %s: %s", destination, err)
    flow.notify("dynamo-ingest: load failed",
                {"event": "load failed", **report, "error_report": report_uri})
    LOG.error("%s failed after %d attempt(s): %s; file now at %s", source.uri, claimed.attempts,
              claimed.error, location)
