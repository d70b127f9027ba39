"""New object in ``incoming/`` → ledger RECEIVED → the load started (the loader Lambda for a
small file, else ``glue:StartJobRun``: :mod:`trigger_lambda.routing`) → ledger STARTED.

S3 delivers events at least once: the ledger's conditional RECEIVED write lets one delivery
start a run and turns the others into logged duplicates. A first run that could not start
(``ConcurrentRunsExceededException`` or another StartJobRun / Invoke error) is left
CONCURRENCY_LIMITED / START_FAILED, which a re-delivery of the event may reclaim, so the
Lambda's own retries (and a redrive of its dead-letter queue) start it later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.control.locations import source_locations
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.errors import DynamoIngestError, LedgerConflictError
from dynamo_ingest.core.formats import incoming_suffixes, is_incoming_name

from trigger_lambda.errors import MalformedS3EventError
from trigger_lambda.events import S3EventRecord, is_test_event, raw_records
from trigger_lambda.routing import LoadNotStartedError, error_text, start_load
from trigger_lambda.settings import Settings

LOG = logging.getLogger(__name__)
UNPARSABLE = "(unparsable record)"

Outcome = Literal["started", "duplicate", "ignored", "malformed", "not_started"]


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
        """Records whose run could not start (recorded in the ledger, to be retried)."""
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


def _notify(sns: Any, settings: Settings, file: str, reason: str) -> None:
    message = {"event": "dynamo-ingest: load not started", "file": file, "reason": reason,
               "glue_job": settings.glue_job_name, "ledger_table": settings.ledger_table}
    try:
        sns.publish(TopicArn=settings.sns_topic_arn,
                    Subject="dynamo-ingest: a file could not be started",
                    Message=json.dumps(message, ensure_ascii=False, indent=2))
    except (ClientError, BotoCoreError):
        LOG.exception("could not publish to %s: %s", settings.sns_topic_arn, message)


def accept_object(record: S3EventRecord, settings: Settings, *, ledger: Ledger, glue: Any,
                  sns: Any, lambda_: Any = None) -> RecordOutcome:
    """Start the load of one new object (:func:`trigger_lambda.routing.start_load`) unless it
    is out of scope or already known."""
    if (not record.is_object_created or not record.key.startswith(settings.incoming_prefix)
            or not is_incoming_name(record.key)):
        LOG.info("ignoring %s %s: not an object created under %s with one of the suffixes %s",
                 record.event_name, record.uri, settings.incoming_prefix,
                 " ".join(incoming_suffixes()))
        return RecordOutcome(record.uri, "ignored")
    source = SourceObject(record.bucket, record.key, record.etag or "")
    try:
        ledger.receive(source)
    except LedgerConflictError:
        try:
            ledger.reclaim(source)
            LOG.info("%s: re-delivered event for a run that could not start; starting it now",
                     record.uri)
        except LedgerConflictError as err:
            LOG.info("duplicate event for %s (ETag %s), no second run: %s", record.uri,
                     source.etag, err)
            return RecordOutcome(record.uri, "duplicate", detail=str(err))
    arguments = job_arguments(record, settings)
    try:
        started = start_load(record.key, record.size, arguments, settings.routing, glue=glue,
                             lambda_=lambda_)
    except LoadNotStartedError as err:
        reason = str(err)
        ledger.mark_not_started(source, reason, concurrency_limited=err.concurrency_limited)
        if err.concurrency_limited:
            LOG.warning("%s: %s; the invocation fails so Lambda retries it", record.uri, reason)
        else:
            LOG.error("%s: %s", record.uri, reason)
            _notify(sns, settings, record.uri, reason)
        return RecordOutcome(record.uri, "not_started", detail=reason)
    run_id = started.job_run_id
    try:
        ledger.mark_started(source, run_id, arguments)
    except DynamoIngestError:
        # The run is going; the job's own job_started() confirms it in the ledger.
        LOG.exception("%s: run %s started but recording it failed", record.uri, run_id)
    LOG.info("%s: started run %s (%s engine)", record.uri, run_id, started.engine)
    return RecordOutcome(record.uri, "started", job_run_id=run_id, engine=started.engine)


def handle_event(event: Mapping[str, Any], settings: Settings, *, ledger: Ledger, glue: Any,
                 sns: Any, lambda_: Any = None) -> TriggerResult:
    """Handle every record of an S3 notification; never stops at the first failure."""
    result = TriggerResult()
    if is_test_event(event):
        LOG.info("ignoring s3:TestEvent for bucket %s", event.get("Bucket"))
        return result
    for raw in raw_records(event):
        try:
            record = S3EventRecord.from_raw(raw)
        except MalformedS3EventError as err:
            # Retrying cannot repair it: report and move on to the other records.
            LOG.error("%s", err)
            _notify(sns, settings, UNPARSABLE, str(err))
            result.outcomes.append(RecordOutcome(UNPARSABLE, "malformed", detail=str(err)))
            continue
        try:
            result.outcomes.append(accept_object(record, settings, ledger=ledger, glue=glue,
                                                 sns=sns, lambda_=lambda_))
        except (DynamoIngestError, ClientError, BotoCoreError) as err:
            reason = error_text(err)
            LOG.exception("%s: could not start the load", record.uri)
            _notify(sns, settings, record.uri, reason)
            result.outcomes.append(RecordOutcome(record.uri, "not_started", detail=reason))
    return result
