"""A run of our job finished → file to ``complete/`` or ``error/``, ledger updated, SNS told;
a failed run is retried (resuming from its checkpoints) while attempts remain.

Each outcome is first claimed with a conditional ledger write (SUCCEEDED…, RETRYING, FAILED)
and only then acted on, so when EventBridge delivers an event twice only one delivery moves
the file or starts the retry; the other finds the record moved on and is logged as a
duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.dispatch import Wake
from dynamo_ingest.control.finish import EventFlow, finish_run
from dynamo_ingest.control.ledger import (
    NOT_STARTED_STATUSES,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
)
from dynamo_ingest.control.queue import TableQueue, record_table, start_claim
from dynamo_ingest.control.s3_objects import MANAGED_COPY_THRESHOLD
from dynamo_ingest.core.arguments import argument_names
from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError

from callback_lambda.errors import RetryNotStartedError
from callback_lambda.events import GlueJobStateChange
from callback_lambda.settings import Settings

LOG = logging.getLogger(__name__)
SUCCESS_STATES = frozenset({"SUCCEEDED"})
FAILURE_STATES = frozenset({"FAILED", "TIMEOUT", "STOPPED"})
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


@dataclass(frozen=True)
class Clients:
    """The boto3 clients the callback uses (created by the handler), and its way to wake the
    dispatcher (None: the scheduled sweep does it)."""

    glue: Any
    s3: Any
    sns: Any
    dispatch: Wake | None = None


def _error_text(err: BaseException) -> str:
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(err).__name__}: {err}"


def retry_arguments(run_arguments: dict[str, str]) -> dict[str, str]:
    """The failed run's own job arguments, minus ``--restart`` (Glue's reserved ones too)."""
    ours = {f"--{name}" for name in argument_names()}
    return {k: v for k, v in run_arguments.items() if k in ours and k not in NOT_REPEATED_ON_RETRY}


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
        _flow(settings, clients).notify("dynamo-ingest: run without ledger record",
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


def _flow(settings: Settings, clients: Clients,
          threshold: int = MANAGED_COPY_THRESHOLD) -> EventFlow:
    return EventFlow(clients.s3, clients.sns, settings.sns_topic_arn, settings.folders,
                     threshold)


def _succeeded(change: GlueJobStateChange, record: LedgerRecord, settings: Settings,
               ledger: Ledger, clients: Clients, threshold: int) -> CallbackResult:
    if record.report_job_run_id != change.job_run_id:
        LOG.warning("run %s succeeded without writing its report to the ledger: counts unknown",
                    change.job_run_id)
    finished = finish_run(ledger, record.source, change.job_run_id, succeeded=True,
                          flow=_flow(settings, clients, threshold))
    return CallbackResult(finished.outcome, change.job_run_id, record.source.uri,
                          finished.file_location)


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
    arguments = retry_arguments(dict(run.get("Arguments") or record.arguments))
    # Claimed like a dispatcher's start: if this callback dies before the retry starts, the
    # sweep puts the file back in its queue once the claim is provably dead.
    ledger.mark_retrying(source, change.job_run_id, error, arguments=arguments,
                         claim=start_claim(f"retry-{change.job_run_id}"))
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
            _flow(settings, clients).notify("dynamo-ingest: a retry could not be started",
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
    error = _failure_message(change, record, run)
    finished = finish_run(ledger, record.source, change.job_run_id, succeeded=False,
                          error=error, flow=_flow(settings, clients, threshold),
                          details={"state": change.state, "message": change.message,
                                   "job_name": change.job_name})
    return CallbackResult("failed", change.job_run_id, record.source.uri,
                          finished.file_location, detail=error)
