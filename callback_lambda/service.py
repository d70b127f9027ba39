"""A run of our job finished → file to ``complete/`` or ``error/``, ledger updated, SNS told;
a failed run is retried (resuming from its checkpoints) while attempts remain.

Each outcome is first claimed with a conditional ledger write (SUCCEEDED…, RETRYING, FAILED)
and only then acted on, so when EventBridge delivers an event twice only one delivery moves
the file or starts the retry; the other finds the record moved on and is logged as a
duplicate.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.ledger import (
    INT_COUNTS,
    NOT_STARTED_STATUSES,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
)
from dynamo_ingest.control.locations import source_locations
from dynamo_ingest.control.queue import TableQueue, record_table
from dynamo_ingest.control.s3_objects import MANAGED_COPY_THRESHOLD, move_object, put_json
from dynamo_ingest.core.arguments import argument_names
from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError, SourceError

from callback_lambda.errors import RetryNotStartedError
from callback_lambda.events import GlueJobStateChange
from callback_lambda.settings import Settings

LOG = logging.getLogger(__name__)
SUCCESS_STATES = frozenset({"SUCCEEDED"})
FAILURE_STATES = frozenset({"FAILED", "TIMEOUT", "STOPPED"})
ERROR_REPORT_SUFFIX = ".error.json"
# A retry resumes from the failed run's checkpoints, so it never forces a clean start.
NOT_REPEATED_ON_RETRY = frozenset({"--restart"})

Outcome = Literal["ignored", "duplicate", "succeeded", "succeeded_with_rejects", "retried",
                  "requeued", "failed", "error"]


@dataclass(frozen=True)
class CallbackResult:
    """What the callback did with one state-change event."""

    outcome: Outcome
    job_run_id: str | None = None
    file: str | None = None
    file_location: str | None = None
    new_job_run_id: str | None = None
    detail: str | None = None


# Asks the dispatcher to start the next queued files of a table (a load just ended).
Dispatch = Callable[[str], None]


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the callback uses (created by the handler), and its way to wake the
    dispatcher (None: the scheduled sweep does it)."""

    glue: Any
    s3: Any
    sns: Any
    dispatch: Dispatch | None = None


def _error_text(err: BaseException) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(err).__name__}: {err}"


def _counts(record: LedgerRecord) -> dict[str, Any]:
    counts: dict[str, Any] = {name: getattr(record, name) for name in INT_COUNTS}
    counts.update(wcu_consumed=record.wcu_consumed, elapsed_s=record.elapsed_s)
    return counts


def _notify(sns: Any, settings: Settings, subject: str, message: dict[str, Any]) -> None:
    try:
        sns.publish(TopicArn=settings.sns_topic_arn, Subject=subject,
                    Message=json.dumps(message, ensure_ascii=False, indent=2, default=str))
    except (ClientError, BotoCoreError):
        LOG.exception("could not publish to %s: %s", settings.sns_topic_arn, message)


def retry_arguments(run_arguments: dict[str, str]) -> dict[str, str]:
    """The failed run's own job arguments, minus ``--restart`` (Glue's reserved ones too)."""
    ours = {f"--{name}" for name in argument_names()}
    return {k: v for k, v in run_arguments.items() if k in ours and k not in NOT_REPEATED_ON_RETRY}


def _destination(source: SourceObject, settings: Settings, *, succeeded: bool) -> str | None:
    """Where a finished file goes, or None when it is not ours to move (outside incoming/)."""
    if not source.bucket:
        return None
    locations = source_locations(source.bucket, source.key, settings.folders)
    return locations.complete if succeeded else locations.error


def _find_record(ledger: Ledger, arguments: dict[str, str]) -> LedgerRecord | None:
    source_path = arguments.get("--source_path")
    if not source_path:
        return None
    etag = arguments.get("--source_etag")
    if etag:
        return ledger.get(SourceObject.from_uri(source_path, etag))
    return ledger.find(source_path)  # a manual run: the job found the ETag itself


def handle_state_change(change: GlueJobStateChange, settings: Settings, *, ledger: Ledger,
                        clients: Clients,
                        managed_copy_threshold: int = MANAGED_COPY_THRESHOLD) -> CallbackResult:
    """Finish, retry or fail the file whose run ``change`` reports."""
    if change.job_name != settings.glue_job_name:
        LOG.info("ignoring state change of job %s (ours is %s)", change.job_name,
                 settings.glue_job_name)
        return CallbackResult("ignored", change.job_run_id, detail=f"job {change.job_name}")
    if change.state not in SUCCESS_STATES | FAILURE_STATES:
        LOG.info("ignoring state %s of run %s: not a final state", change.state, change.job_run_id)
        return CallbackResult("ignored", change.job_run_id, detail=f"state {change.state}")
    try:
        run = clients.glue.get_job_run(JobName=change.job_name, RunId=change.job_run_id)["JobRun"]
    except ClientError as err:
        detail = f"glue:GetJobRun for run {change.job_run_id} failed: {_error_text(err)}"
        LOG.error("%s", detail)
        return CallbackResult("error", change.job_run_id, detail=detail)
    arguments = dict(run.get("Arguments") or {})
    record = _find_record(ledger, arguments)
    if record is None:
        detail = (f"run {change.job_run_id} ({change.state}) of "
                  f"{arguments.get('--source_path', 'no --source_path')} has no ledger record: "
                  "the job stopped before registering; see the run's logs")
        LOG.error("%s", detail)
        _notify(clients.sns, settings, "dynamo-ingest: run without ledger record",
                {"event": "run without ledger record", "job_run_id": change.job_run_id,
                 "state": change.state, "message": change.message, "arguments": arguments})
        return CallbackResult("error", change.job_run_id, detail=detail)
    if record.job_run_id != change.job_run_id:
        LOG.info("ignoring %s of run %s for %s: the ledger's current run is %s",
                 change.state, change.job_run_id, record.source.uri, record.job_run_id)
        return CallbackResult("duplicate", change.job_run_id, record.source.uri,
                              record.file_location, detail=f"current run {record.job_run_id}")
    if (change.state in SUCCESS_STATES and record.report_job_run_id == change.job_run_id
            and record.report_status == "FAILED"):
        # Glue says SUCCEEDED but the job's own report says FAILED: never file it as loaded.
        LOG.error("run %s ended SUCCEEDED but its report says FAILED: %s", change.job_run_id,
                  record.error)
        change = replace(change, state="FAILED",
                         message=f"the run ended SUCCEEDED but its report says FAILED: "
                                 f"{record.error}")
    try:
        if change.state in SUCCESS_STATES:
            result = _succeeded(change, record, settings, ledger, clients,
                                managed_copy_threshold)
        elif record.attempts < settings.max_attempts and not _permanent(change, record):
            result = _retry(change, record, run, settings, ledger, clients)
        else:
            result = _failed(change, record, run, settings, ledger, clients,
                             managed_copy_threshold)
    except LedgerConflictError as err:
        LOG.info("%s of run %s for %s already handled: %s", change.state, change.job_run_id,
                 record.source.uri, err)
        return CallbackResult("duplicate", change.job_run_id, record.source.uri,
                              detail=str(err))
    if result.outcome != "retried" and clients.dispatch is not None:
        # The load's slot is free (or its retry waits in the queue): start what waits.
        clients.dispatch(record_table(record))
    return result


def _move(source: SourceObject, job_run_id: str, destination: str | None, ledger: Ledger,
          clients: Clients, settings: Settings, threshold: int) -> str:
    """Move the claimed file and record its new place; SNS + re-raise when the move fails."""
    if destination is None:
        LOG.info("%s is outside %s: left where it is", source.uri, settings.incoming_prefix)
        return source.uri
    try:
        move_object(clients.s3, source.uri, destination, expected_etag=source.etag,
                    managed_copy_threshold=threshold)
    except SourceError as err:
        _notify(clients.sns, settings, "dynamo-ingest: finished file could not be moved",
                {"event": "file not moved", "file": source.uri, "destination": destination,
                 "job_run_id": job_run_id, "reason": str(err)})
        raise
    ledger.file_moved(source, job_run_id, destination)
    return destination


def _succeeded(change: GlueJobStateChange, record: LedgerRecord, settings: Settings,
               ledger: Ledger, clients: Clients, threshold: int) -> CallbackResult:
    source = record.source
    if record.report_job_run_id != change.job_run_id:
        LOG.warning("run %s succeeded without writing its report to the ledger: counts unknown",
                    change.job_run_id)
    claimed = ledger.finish(source, change.job_run_id, succeeded=True)
    location = _move(source, change.job_run_id,
                     _destination(source, settings, succeeded=True), ledger, clients,
                     settings, threshold)
    if claimed.status == LedgerStatus.SUCCEEDED_WITH_REJECTS:
        _notify(clients.sns, settings, "dynamo-ingest: rows rejected",
                {"event": "loaded with rejected rows", "file": source.uri,
                 "file_location": location, "rejects_location": claimed.rejects_location,
                 "job_run_id": change.job_run_id, **_counts(claimed)})
        LOG.warning("%s loaded with %d rejected row(s): %s", source.uri, claimed.rows_rejected,
                    claimed.rejects_location)
        return CallbackResult("succeeded_with_rejects", change.job_run_id, source.uri, location)
    LOG.info("%s loaded by run %s; file now at %s", source.uri, change.job_run_id, location)
    return CallbackResult("succeeded", change.job_run_id, source.uri, location)


def _permanent(change: GlueJobStateChange, record: LedgerRecord) -> bool:
    """True when the run's own report says a retry would fail the same way (schema drift, a
    bad argument, a missing table): retrying only bills another Glue run."""
    return record.report_job_run_id == change.job_run_id and not record.report_retryable


def _failure_message(change: GlueJobStateChange, record: LedgerRecord, run: dict[str, Any]) -> str:
    parts = [f"run {change.job_run_id} {change.state}: {change.message or run.get('ErrorMessage')}"]
    if record.report_job_run_id == change.job_run_id and record.error:
        parts.append(f"job report: {record.error}")
    if _permanent(change, record):
        parts.append("not retried: the same arguments would fail the same way; fix the cause, "
                     "then run `dynamo-ingest retry` on the file")
    return "; ".join(parts)


def _retry(change: GlueJobStateChange, record: LedgerRecord, run: dict[str, Any],
           settings: Settings, ledger: Ledger, clients: Clients) -> CallbackResult:
    source = record.source
    if record.status not in (LedgerStatus.STARTED, *NOT_STARTED_STATUSES):
        raise LedgerConflictError(f"{source.uri}: expected run {change.job_run_id} STARTED, "
                                  f"found {record.status}")
    error = _failure_message(change, record, run)
    ledger.mark_retrying(source, change.job_run_id, error)
    arguments = retry_arguments(dict(run.get("Arguments") or record.arguments))
    try:
        new_run_id = str(clients.glue.start_job_run(JobName=settings.glue_job_name,
                                                    Arguments=arguments)["JobRunId"])
    except (ClientError, BotoCoreError) as err:
        limited = (isinstance(err, ClientError) and
                   err.response.get("Error", {}).get("Code") == "ConcurrentRunsExceededException")
        reason = f"retry of {source.uri} not started: glue:StartJobRun failed: {_error_text(err)}"
        if limited:
            # Back-pressure: the retry waits in the table's queue, first in line.
            TableQueue(ledger, record_table(record)).requeue(source, reason, arguments)
            LOG.info("%s: %s; the retry waits in the queue", source.uri, reason)
            return CallbackResult("requeued", change.job_run_id, source.uri,
                                  record.file_location, detail=reason)
        ledger.mark_not_started(source, reason, concurrency_limited=False)
        if not limited:
            _notify(clients.sns, settings, "dynamo-ingest: a retry could not be started",
                    {"event": "retry not started", "file": source.uri,
                     "failed_job_run_id": change.job_run_id, "reason": reason})
        # Raised so Lambda re-delivers this event; the ledger lets that delivery retry again.
        raise RetryNotStartedError(reason) from err
    try:
        ledger.mark_started(source, new_run_id, arguments)
    except DynamoIngestError:
        LOG.exception("%s: retry run %s started but recording it failed", source.uri, new_run_id)
    LOG.warning("%s: %s; retry run %s started (attempt %d of %d)", source.uri, error, new_run_id,
                record.attempts + 1, settings.max_attempts)
    return CallbackResult("retried", change.job_run_id, source.uri, record.file_location,
                          new_job_run_id=new_run_id, detail=error)


def _failed(change: GlueJobStateChange, record: LedgerRecord, run: dict[str, Any],
            settings: Settings, ledger: Ledger, clients: Clients,
            threshold: int) -> CallbackResult:
    source = record.source
    error = _failure_message(change, record, run)
    claimed = ledger.finish(source, change.job_run_id, succeeded=False, error=error)
    destination = _destination(source, settings, succeeded=False)
    location = _move(source, change.job_run_id, destination, ledger, clients, settings, threshold)
    report: dict[str, Any] = {
        "file": source.uri, "etag": source.etag, "file_location": location,
        "status": str(claimed.status), "state": change.state, "message": change.message,
        "error": error, "job_name": change.job_name, "job_run_id": change.job_run_id,
        "attempts": claimed.attempts, "job_run_ids": list(claimed.job_run_ids),
        "rejects_location": claimed.rejects_location, "finished_at": claimed.finished_at,
        "counts": _counts(claimed)}
    report_uri = None
    if destination is not None:
        try:
            report_uri = put_json(clients.s3, destination + ERROR_REPORT_SUFFIX, report)
        except SourceError:
            # The SNS message below carries the same report; do not let this hide it.
            LOG.exception("could not write the error report beside %s", destination)
    _notify(clients.sns, settings, "dynamo-ingest: load failed",
            {"event": "load failed", **report, "error_report": report_uri})
    LOG.error("%s failed after %d attempt(s): %s; file now at %s", source.uri, claimed.attempts,
              error, location)
    return CallbackResult("failed", change.job_run_id, source.uri, location, detail=error)
