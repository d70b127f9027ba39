"""The dispatcher's modes of the trigger function: dispatch one table's queue (after a file
is queued, or when the callback reports a load's end), and recognise the events that ask for
it (the callback's request, the schedule; the sweep itself is
:func:`trigger_lambda.service.sweep`, as it queues files like an S3 event does).

The dispatcher lives in the trigger function because it needs exactly the trigger's settings
(the target table, the job and how its runs are started) and permissions; the callback only
asks it to run (``lambda:InvokeFunction``, asynchronous), so one function starts every load.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from dynamo_ingest.control.dispatch import (
    DispatchPolicy,
    DispatchResult,
    OrderPolicy,
    StartOutcome,
    Upload,
    dispatch,
    earlier_than,
    unannounced_uploads,
)
from dynamo_ingest.control.ledger import Ledger, LedgerRecord
from dynamo_ingest.control.queue import TableQueue
from dynamo_ingest.core.formats import incoming_suffixes

from trigger_lambda.routing import LoadNotStartedError, start_load
from trigger_lambda.settings import Settings

LOG = logging.getLogger(__name__)
SCHEDULE_SOURCE = "aws.events"
SCHEDULE_DETAIL_TYPE = "Scheduled Event"


def is_schedule(event: Mapping[str, Any]) -> bool:
    """An EventBridge schedule rule's event (the sweep)."""
    return (event.get("source") == SCHEDULE_SOURCE
            and event.get("detail-type") == SCHEDULE_DETAIL_TYPE)


def dispatch_request(event: Mapping[str, Any]) -> str | None:
    """The table of a ``{"dispatch": TABLE}`` invocation (the callback's), else None."""
    table = event.get("dispatch")
    return str(table) if isinstance(table, str) and table else None


def policy(settings: Settings) -> DispatchPolicy:
    """The deployment's upload order policy."""
    order: OrderPolicy = "parallel" if settings.upload_order == "parallel" else "serial"
    return DispatchPolicy(order=order, max_running=settings.table_max_loads)


def uploads(settings: Settings, ledger: Ledger, s3: Any, bucket: str | None) -> list[Upload]:
    """The uploads under the incoming prefix that the ledger does not know yet."""
    if s3 is None or bucket is None:
        return []
    return unannounced_uploads(s3, ledger, bucket, settings.incoming_prefix,
                               incoming_suffixes())


def notify_not_started(sns: Any, settings: Settings, file: str, reason: str) -> None:
    """Tell the topic that a file could not be started (a fault a person fixes)."""
    message = {"event": "dynamo-ingest: load not started", "file": file, "reason": reason,
               "glue_job": settings.glue_job_name, "ledger_table": settings.ledger_table}
    try:
        sns.publish(TopicArn=settings.sns_topic_arn,
                    Subject="dynamo-ingest: a file could not be started",
                    Message=json.dumps(message, ensure_ascii=False, indent=2))
    except (ClientError, BotoCoreError):
        LOG.exception("could not publish to %s: %s", settings.sns_topic_arn, message)


def start_queued(record: LedgerRecord, settings: Settings, *, glue: Any, lambda_: Any,
                 sns: Any) -> StartOutcome:
    """Start one claimed file through :func:`trigger_lambda.routing.start_load` with the
    arguments and the size its record holds.

    A concurrency refusal (Glue's ``ConcurrentRunsExceededException``) is back-pressure, not
    a fault: ``limited``, the file stays queued, no alert. Any other refusal alerts SNS and is
    ``failed``."""
    try:
        started = start_load(record.source.key, record.size, record.arguments,
                             settings.routing, glue=glue, lambda_=lambda_)
    except LoadNotStartedError as err:
        if err.concurrency_limited:
            return StartOutcome("limited", reason=str(err))
        notify_not_started(sns, settings, record.source.uri, str(err))
        return StartOutcome("failed", reason=str(err))
    return StartOutcome("started", run_id=started.job_run_id, engine=started.engine)


def dispatch_table(settings: Settings, *, ledger: Ledger, glue: Any, sns: Any, s3: Any = None,
                   bucket: str | None = None, lambda_: Any = None) -> DispatchResult:
    """Start the queued files of the deployment's table that its limits allow."""
    queue = TableQueue(ledger, settings.target_table)
    pending = uploads(settings, ledger, s3, bucket or settings.source_bucket or None)
    return dispatch(queue, lambda record: start_queued(record, settings, glue=glue,
                                                       lambda_=lambda_, sns=sns),
                    policy(settings), earlier_uploads=earlier_than(pending))
