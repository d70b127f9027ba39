"""New object in ``incoming/`` → ledger QUEUED in its table's queue → the dispatcher starts
it (the loader Lambda for a small file, else ``glue:StartJobRun``: one function,
:func:`trigger_lambda.routing.start_load`) → STARTED.

S3 delivers events at least once: the queue's conditional write lets one delivery queue the
file and turns the others into logged duplicates. A start that Glue refuses with
``ConcurrentRunsExceededException`` leaves the file QUEUED: the next load that ends, or the
scheduled sweep, starts it. This function is also the dispatcher (its other two modes: a
direct ``{"dispatch": TABLE}`` invocation and the EventBridge schedule, see
:mod:`trigger_lambda.dispatching`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.dispatch import DispatchResult
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.control.locations import source_locations
from dynamo_ingest.control.queue import TableQueue, arrival_key
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError
from dynamo_ingest.core.formats import incoming_suffixes, is_incoming_name

from trigger_lambda.dispatching import dispatch_table, notify_not_started, uploads
from trigger_lambda.errors import MalformedS3EventError
from trigger_lambda.events import S3EventRecord, is_test_event, raw_records
from trigger_lambda.routing import error_text
from trigger_lambda.settings import Settings

LOG = logging.getLogger(__name__)
UNPARSABLE = "(unparsable record)"

Outcome = Literal["queued", "started", "duplicate", "ignored", "malformed", "not_started"]


@dataclass(frozen=True)
class RecordOutcome:
    """What the trigger did with one record of the event."""

    file: str
    outcome: Outcome
    job_run_id: str | None = None
    detail: str | None = None
    engine: str | None = None  # local (the loader function) or spark (Glue), once started


@dataclass
class TriggerResult:
    """Every record's outcome; ``not_started`` ones make the invocation fail (retry)."""

    outcomes: list[RecordOutcome] = field(default_factory=list)

    @property
    def not_started(self) -> list[RecordOutcome]:
        """Records that could not be queued (the invocation fails, so Lambda retries it)."""
        return [o for o in self.outcomes if o.outcome == "not_started"]

    def to_dict(self) -> dict[str, Any]:
        """The handler's JSON result."""
        return {"outcomes": [asdict(o) for o in self.outcomes]}


def rejects_path(bucket: str, key: str, settings: Settings) -> str:
    """The object's rejects location (:func:`dynamo_ingest.control.locations.source_locations`)."""
    return source_locations(bucket, key, settings.folders).rejects


def job_arguments(record: S3EventRecord, settings: Settings) -> dict[str, str]:
    """StartJobRun's ``Arguments`` for one new object (Glue's ``--name`` form)."""
    arguments = JobArguments(
        source_path=record.uri, source_etag=(record.etag or "").strip('"'),
        target_table=settings.target_table, partition_key=settings.partition_key,
        sort_key=settings.sort_key or None, catalog_database=settings.catalog_database or None,
        catalog_table=settings.catalog_table or None,
        rejects_path=rejects_path(record.bucket, record.key, settings),
        ledger_table=settings.ledger_table,
        # The upload time fixes --ttl_seconds' "now" for every attempt of this file.
        load_time=record.event_time)
    return arguments.trigger_arguments()


def accept(record: S3EventRecord, settings: Settings, queue: TableQueue) -> RecordOutcome:
    """Queue one new object unless it is out of scope or already known."""
    if (not record.is_object_created or not record.key.startswith(settings.incoming_prefix)
            or not is_incoming_name(record.key)):
        LOG.info("ignoring %s %s: not an object created under %s with one of the suffixes %s",
                 record.event_name, record.uri, settings.incoming_prefix,
                 " ".join(incoming_suffixes()))
        return RecordOutcome(record.uri, "ignored")
    source = SourceObject(record.bucket, record.key, record.etag or "")
    try:
        queue.enqueue(source, arrival_key(record.event_time, record.sequencer, source),
                      job_arguments(record, settings), size=record.size)
    except LedgerConflictError as err:
        LOG.info("duplicate event for %s (ETag %s), nothing queued: %s", record.uri,
                 source.etag, err)
        return RecordOutcome(record.uri, "duplicate", detail=str(err))
    LOG.info("%s queued for %s", record.uri, settings.target_table)
    return RecordOutcome(record.uri, "queued")


def handle_event(event: Mapping[str, Any], settings: Settings, *, ledger: Ledger, glue: Any,
                 sns: Any, s3: Any = None, lambda_: Any = None) -> TriggerResult:
    """Queue every record of an S3 notification (never stopping at the first failure), then
    dispatch the table's queue."""
    result = TriggerResult()
    queue = TableQueue(ledger, settings.target_table)
    if is_test_event(event):
        LOG.info("ignoring s3:TestEvent for bucket %s", event.get("Bucket"))
        return result
    for raw in raw_records(event):
        try:
            record = S3EventRecord.from_raw(raw)
        except MalformedS3EventError as err:
            # Retrying cannot repair it: report and move on to the other records.
            LOG.error("%s", err)
            notify_not_started(sns, settings, UNPARSABLE, str(err))
            result.outcomes.append(RecordOutcome(UNPARSABLE, "malformed", detail=str(err)))
            continue
        try:
            result.outcomes.append(accept(record, settings, queue))
        except (DynamoIngestError, ClientError, BotoCoreError) as err:
            reason = error_text(err)
            LOG.exception("%s: could not queue the load", record.uri)
            notify_not_started(sns, settings, record.uri, reason)
            result.outcomes.append(RecordOutcome(record.uri, "not_started", detail=reason))
    if any(o.outcome == "queued" for o in result.outcomes):
        buckets = {o.file[len("s3://"):].partition("/")[0] for o in result.outcomes
                   if o.outcome == "queued"}
        dispatched = dispatch_table(settings, ledger=ledger, glue=glue, sns=sns, s3=s3,
                                    bucket=min(buckets), lambda_=lambda_)
        result.outcomes = [_dispatched(o, dispatched) for o in result.outcomes]
    return result


def _dispatched(outcome: RecordOutcome, dispatched: DispatchResult) -> RecordOutcome:
    """A queued record's outcome after the dispatch: started, still queued, or not started
    (a start error, which fails the invocation so that Lambda's retry queues it again)."""
    if outcome.outcome != "queued":
        return outcome
    runs, failures = dict(dispatched.started), dict(dispatched.failed)
    if outcome.file in runs:
        return replace(outcome, outcome="started", job_run_id=runs[outcome.file])
    if outcome.file in failures:
        return replace(outcome, outcome="not_started", detail=failures[outcome.file])
    return outcome


@dataclass
class SweepResult:
    """What the sweep found and did."""

    released_claims: int = 0
    queued_without_event: list[str] = field(default_factory=list)
    dispatch: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """The handler's JSON result."""
        return {"released_claims": self.released_claims,
                "queued_without_event": self.queued_without_event, "dispatch": self.dispatch}


def sweep(settings: Settings, *, ledger: Ledger, glue: Any, sns: Any, s3: Any,
          bucket: str | None = None, now: float | None = None,
          lambda_: Any = None) -> SweepResult:
    """The safety net: queue again the files whose claimant (a dispatcher, or the callback or
    the loader starting a next run) died mid-start, queue the uploads whose event is older
    than ``SWEEP_GRACE_S`` and still missing, then dispatch."""
    now = time.time() if now is None else now
    queue = TableQueue(ledger, settings.target_table)
    result = SweepResult(released_claims=queue.release_dead_claims(queue.snapshot(), now))
    bucket = bucket or settings.source_bucket or None
    for upload in uploads(settings, ledger, s3, bucket):
        age = now - datetime.fromisoformat(upload.last_modified.replace("Z", "+00:00")) \
            .astimezone(UTC).timestamp()
        if age < settings.sweep_grace_s:
            continue  # its event is probably on its way
        source = upload.source
        record = S3EventRecord("ObjectCreated:Put", source.bucket, source.key, source.etag,
                               upload.size, None, upload.last_modified)
        if accept(record, settings, queue).outcome == "queued":
            LOG.warning("%s had no S3 event after %.0f s: queued by the sweep", source.uri, age)
            result.queued_without_event.append(source.uri)
    result.dispatch = dispatch_table(settings, ledger=ledger, glue=glue, sns=sns, s3=s3,
                                     bucket=bucket, lambda_=lambda_).to_dict()
    return result
