"""Load one small file with the in-process engine: plan → execute → finish.

A stand-in with the shape and the AWS calls of the loader (the ledger record, the target
table's writes, the source read, the rejects file, the move, the notification, the hand-on
to a fresh invocation near the deadline), so that its deployment (terraform/lambda.tf, its
role in iam.tf, its zip) can be derived from the code and checked.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dynamo_ingest.control.checkpoints import LedgerSession
from dynamo_ingest.control.load_request import LoadRequest
from dynamo_ingest.control.locations import default_rejects_path, source_locations
from dynamo_ingest.control.s3_objects import move_object
from dynamo_ingest.control.storage import ResolvedSource, Storage, resolve_source
from dynamo_ingest.core.arguments import JobArguments, job_arguments_from_mapping
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import CsvSchema, get_catalog_schema
from dynamo_ingest.core.keys import describe_key_schema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.core.report import RowCounts
from dynamo_ingest.engine.local import LocalLoad, load_file, worker_count
from dynamo_ingest.engine.pipeline import PartitionResult, PartitionTask, default_partitions
from dynamo_ingest.engine.rejects import merge_parts, rejects_header
from dynamo_ingest.engine.writer import RetryPolicy

from loader_lambda.settings import Settings

LOG = logging.getLogger("loader_lambda")


@dataclass(frozen=True)
class Clients:
    """The clients the loader calls besides the ledger and the target table."""

    s3: Any
    sns: Any
    lambda_: Any


@dataclass
class _Plan:
    """What the engine runs and where its results go."""

    args: JobArguments
    source: ResolvedSource
    ledger: LedgerSession
    schema: CsvSchema
    task: PartitionTask
    load: LocalLoad
    rejects_path: str
    results: list[PartitionResult] = field(default_factory=list)


def handle_load(request: LoadRequest, settings: Settings, clients: Clients, *,
                function_arn: str, remaining_ms: Callable[[], int]) -> dict[str, Any]:
    """Load the file, or hand it on when too little time is left; returns the outcome."""
    if remaining_ms() < settings.deadline_margin_s * 1000:
        clients.lambda_.invoke(FunctionName=function_arn, InvocationType="Event",
                               Payload=request.handed_on(continuation=True).to_payload())
        return {"outcome": "handed_on", "job_run_id": request.job_run_id}
    plan = _plan(request, settings, AwsConfig.from_environ())
    plan.results = load_file(plan.load, plan.task)
    return _finish(plan, request, settings, clients)


def _plan(request: LoadRequest, settings: Settings, aws: AwsConfig) -> _Plan:
    """Arguments, source, ledger record, key schema and layout, then the engine's task."""
    args = job_arguments_from_mapping({k.removeprefix("--"): v
                                       for k, v in request.arguments.items()})
    source = resolve_source(args.source_path, aws, stage_s3=True,
                            expected_etag=args.source_etag)
    ledger = LedgerSession.open(aws, settings.ledger_table, source, create=aws.is_emulated)
    ledger.job_started(request.job_run_id, args.to_glue_arguments())
    keys, _table = describe_key_schema(aws.client("dynamodb"), args.target_table)
    schema = get_catalog_schema(aws.client("glue"), args.catalog_database or "",
                                args.catalog_table or "")
    mapping = AttributeMapping.from_arguments(args)
    rejects_path = args.rejects_path or default_rejects_path(source.bucket, source.key,
                                                             settings.folders)
    task = PartitionTask(
        columns=schema.columns, key_schema=keys, target_table=args.target_table,
        empty_value=args.empty_value, delimiter=schema.delimiter, quote_char=schema.quote_char,
        aws=aws, retry=RetryPolicy(max_retry_seconds=args.max_retry_seconds),
        rate_per_task=None, rejects_parts_prefix=rejects_path + ".parts",
        ledger_table=settings.ledger_table, source_key=(source.bucket, source.key, source.etag),
        partitions=default_partitions(worker_count(), source.size),
        mapping=None if mapping.is_identity else mapping, write_mode=args.write_mode)
    load = LocalLoad(str(source.local_copy), schema,
                     tuple(mapping.key_hash_parts(schema.columns, keys)), worker_count())
    return _Plan(args, source, ledger, schema, task, load, rejects_path)


def _finish(plan: _Plan, request: LoadRequest, settings: Settings,
            clients: Clients) -> dict[str, Any]:
    """Merge the rejects, record the counts, move the file, notify a failure."""
    counts = RowCounts()
    for result in plan.results:
        counts.add(result.counts)
    parts = [plan.task.rejects_part(r.partition) for r in plan.results if r.rejects_written]
    if parts:
        merge_parts(Storage(AwsConfig.from_environ()), rejects_header(plan.schema.names),
                    parts, plan.rejects_path)
    failed = any(r.exhausted or r.error for r in plan.results)
    status = "FAILED" if failed else "SUCCEEDED_WITH_REJECTS" if parts else "SUCCEEDED"
    report = {"status": status, **vars(counts)}
    plan.ledger.record_report(request.job_run_id, report, finish=True)
    if not failed:
        # A finished load leaves no checkpoints: the next upload of this object starts fresh.
        plan.ledger.clear_checkpoints()
    locations = source_locations(plan.source.bucket, plan.source.key, settings.folders)
    destination = locations.error if failed else locations.complete
    if destination is not None:
        move_object(clients.s3, plan.source.uri, destination, expected_etag=plan.source.etag)
    if failed or parts:
        clients.sns.publish(TopicArn=settings.sns_topic_arn, Subject=f"dynamo-ingest: {status}",
                            Message=json.dumps({"source": plan.source.uri, **report}))
    plan.source.discard_staged_copy()
    return {"outcome": status.lower(), "job_run_id": request.job_run_id}
