"""`dynamo-ingest status` and `dynamo-ingest retry`: the ledger, read and acted on by hand."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.ledger import Ledger, LedgerRecord, LedgerStatus, SourceObject
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX
from dynamo_ingest.control.queue import TableOverview, table_overviews
from dynamo_ingest.control.s3_objects import move_object
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.report import RunReport
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from local_aws.lambda_invocations import LambdaInvocations
from local_aws.orchestration import LOADER_FUNCTION
from trigger_lambda.routing import (
    DEFAULT_SMALL_FILE_BYTES,
    LoadNotStartedError,
    Routing,
    StartedLoad,
    start_load,
)

RETRYABLE = frozenset({LedgerStatus.FAILED, LedgerStatus.CONCURRENCY_LIMITED,
                       LedgerStatus.START_FAILED})


# The last run's own counts: a resumed run skips what earlier attempts wrote, and the
# conditional write modes (insert, merge) keep the table's item where the condition failed
# (it exists, or holds a newer version), so "read" is written + rejected + dups + skipped +
# kept, never a row unaccounted for. ("kept" is short so that a 200-column terminal still
# shows a file's s3:// URI on one line.)
COUNT_COLUMNS = ("read", "written", "rejected", "dups", "skipped (resumed)", "kept")


def count_cells(record: LedgerRecord) -> tuple[str, ...]:
    """A record's :data:`COUNT_COLUMNS`, as `status` and `flow` show them."""
    kept = record.items_skipped_existing + record.items_skipped_stale
    return (f"{record.rows_read:,}", f"{record.items_written:,}", f"{record.rows_rejected:,}",
            f"{record.duplicate_rows:,}", f"{record.rows_skipped_by_resume:,}", f"{kept:,}")


def show_status(source: str | None, ledger_table: str, limit: int, out: Console) -> int:
    """Recent runs as a table, or one file's record in full (JSON); returns an exit code."""
    aws = AwsConfig.from_environ()
    ledger = Ledger(aws.client("dynamodb"), ledger_table)
    if source:
        record = ledger.find(source)
        if record is None:
            out.print(f"{source}: not in ledger table {ledger_table!r}")
            return 1
        out.print_json(json.dumps({**record.to_dict(), "engine": record_engine(record)},
                                  default=str))
        return 0
    table = Table(title=f"recent runs ({ledger_table})")
    table.add_column("file", overflow="fold")
    # An emulator's ConsumedCapacity is not DynamoDB's (moto reports one unit per batch).
    wcu = "WCU (emulator's figure)" if "dynamodb" in aws.endpoints else "WCU"
    for column in ("status", "engine", "attempts", *COUNT_COLUMNS, wcu, "updated"):
        table.add_column(column)
    records = ledger.recent(limit=None)
    for record in records[:limit]:
        table.add_row(record.source.uri, str(record.status), record_engine(record),
                      str(record.attempts), *count_cells(record),
                      f"{record.wcu_consumed:,.0f}", record.updated_at or "")
    out.print(table)
    out.print(queue_table(table_overviews(records), time.time()))
    return 0


def _age(moment: str | None, now: float) -> str:
    """``3m 20s`` since an ISO 8601 UTC time (``""`` when unknown)."""
    if not moment:
        return ""
    seconds = max(0, int(now - datetime.fromisoformat(moment.replace("Z", "+00:00"))
                        .timestamp()))
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _state_cell(records: tuple[LedgerRecord, ...], when: str, now: float) -> str:
    """``2 (oldest 3m 20s)`` for a state's files, by the time ``when`` names."""
    if not records:
        return "0"
    oldest = min((getattr(r, when) or r.updated_at or "" for r in records), default="")
    return f"{len(records)} (oldest {_age(oldest, now)})"


def queue_table(overviews: list[TableOverview], now: float) -> Table:
    """Each target table's queue: how many files wait, load, are done or failed, since when,
    and the engines that load them."""
    table = Table(title="queues by target table")
    for column in ("table", "queued", "running", "engine (running)", "done", "failed",
                   "not started", "next to start"):
        table.add_column(column, overflow="fold")
    for view in overviews:
        engines = sorted({running_engine(r) for r in view.running})
        table.add_row(view.table, _state_cell(view.queued, "received_at", now),
                      _state_cell(view.running, "started_at", now), ", ".join(engines),
                      _state_cell(view.done, "finished_at", now),
                      _state_cell(view.failed, "finished_at", now),
                      _state_cell(view.not_started, "received_at", now),
                      view.queued[0].source.uri if view.queued else "")
    return table


# A running Glue run's engine when its arguments do not name one: the job's default
# arguments decide, and the ledger learns the choice only from the run's report.
GLUE_DEFAULT_ENGINE = "glue (the job's default --engine)"


def running_engine(record: LedgerRecord) -> str:
    """The engine a running load was started with, as its record knows it: ``local`` for
    the loader Lambda (it has only the in-process engine); for a Glue run its ``--engine``
    argument (``auto`` until the run has chosen). Never the engine an earlier attempt
    reported, nor ``spark`` for "a Glue run", which may well load with the local engine."""
    if record.job_run_id is None:
        return "not started yet"
    if record.job_run_id.startswith(LAMBDA_RUN_PREFIX):
        return "local"
    return record.arguments.get("--engine") or GLUE_DEFAULT_ENGINE


def record_engine(record: LedgerRecord) -> str:
    """The engine to show for a record: the one its current run's report names, once that run
    has reported; before that what the run was started with (:func:`running_engine`). The
    ledger's own field holds the route until then (``spark`` for any Glue run)."""
    if record.job_run_id is not None and record.report_job_run_id != record.job_run_id:
        return running_engine(record)
    return record.engine or ""


def retry_file(source: str, ledger_table: str, restart: bool, job_name: str, *,
               console: Console, out: Console, loader_function: str = LOADER_FUNCTION,
               small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES) -> int:
    """Start a new run of a FAILED (or never started) file with its last run's arguments,
    routed as the trigger routes it.

    The file is moved back from ``error/`` to its original key and started through
    :func:`trigger_lambda.routing.start_load`: under ``small_file_bytes`` in the loader
    Lambda, else as a run of the Glue job (either resumes from the checkpoints unless
    ``restart``). On a local emulator the load is carried out here, as AWS would: the loader's
    handler, or the Glue run and its state change delivered to the callback.
    """
    aws = AwsConfig.from_environ()
    ledger = Ledger(aws.client("dynamodb"), ledger_table)
    record = ledger.find(source)
    refusal = _retry_refusal(record, source, ledger_table)
    if record is None or refusal is not None:
        console.print(f"[red]{escape(refusal or source)}[/red]")
        return 1
    original = record.source
    s3 = aws.client("s3")
    if record.file_location and record.file_location != original.uri:
        move_object(s3, record.file_location, original.uri)
        record = ledger.file_moved(original, record.job_run_id or "", original.uri)
    size = (record.size if record.size is not None
            else int(s3.head_object(Bucket=original.bucket, Key=original.key)["ContentLength"]))
    routing = Routing(job_name, loader_function, small_file_bytes)
    with _lambda_api(aws) as (lambda_, invocations, environ):
        try:
            started = start_load(original.key, size, _retry_arguments(record, restart), routing,
                                 glue=aws.client("glue"), lambda_=lambda_,
                                 before_invoke=lambda request: ledger.job_started(
                                     original, request.job_run_id, request.arguments))
        except LoadNotStartedError as err:
            console.print(f"[red]{escape(original.uri)} was not started: {escape(str(err))}"
                          "[/red]")
            _end_unstarted(ledger, original, str(err))
            return 1
        where = loader_function if started.engine == "local" else job_name
        console.print(f"started {where} run {started.job_run_id} for {original.uri}")
        if not aws.is_emulated:
            out.print(f"watch it with: dynamo-ingest status {original.uri}")
            return 0
        _carry_out(started, original, ledger, job_name, invocations, environ)
    final = ledger.get(original)
    out.print_json(json.dumps(final.to_dict() if final else {}, default=str))
    return 0 if final and final.status != LedgerStatus.FAILED else 1


def _retry_refusal(record: LedgerRecord | None, source: str, ledger_table: str) -> str | None:
    """Why ``retry`` does not start the file, or None."""
    if record is None:
        return f"{source}: not in ledger table {ledger_table!r}"
    if not record.source.bucket:
        # A Glue run reads S3 objects, and the callback moves files between folders of the
        # bucket: a local file is re-run where it is.
        return (f"{record.source.uri} is a local file: retry re-runs files of the event flow "
                "(s3://bucket/key); run it again with `dynamo-ingest run --source_path …` "
                "(it resumes from its checkpoints)")
    if record.status not in RETRYABLE:
        return (f"{record.source.uri} is {record.status}: only FAILED or not started files "
                "are retried (use `run --restart` to reload a file)")
    return None


def _retry_arguments(record: LedgerRecord, restart: bool) -> dict[str, str]:
    """The last run's arguments (naming the object's ETag, as the trigger does), with
    ``--restart`` only when asked."""
    arguments = {"--source_etag": record.source.etag,
                 **{k: v for k, v in record.arguments.items() if k != "--restart"}}
    if restart:
        arguments["--restart"] = "true"
    return arguments


def _end_unstarted(ledger: Ledger, source: SourceObject, reason: str) -> None:
    """A loader run recorded before its invocation failed: it ends FAILED with the reason."""
    record = ledger.get(source)
    if record is not None and record.status == LedgerStatus.STARTED and record.job_run_id:
        ledger.finish(source, record.job_run_id, succeeded=False, error=reason)


@contextmanager
def _lambda_api(aws: AwsConfig) -> Iterator[tuple[Any, LambdaInvocations | None,
                                                  dict[str, str]]]:
    """The Lambda client ``start_load`` invokes the loader with: on an emulator, a local
    Invoke endpoint (its invocations and the environment that points at it), else AWS's."""
    if not aws.is_emulated:
        yield aws.client("lambda"), None, {}
        return
    from local_aws.moto_server import patched_environ
    from local_aws.orchestration import lambda_endpoint

    # Read again once AWS_ENDPOINT_URL_LAMBDA points at the Invoke endpoint: ``aws`` was read
    # before, and its AWS_ENDPOINT_URL (the emulator's) would win for Lambda.
    with lambda_endpoint({}) as (invocations, environ), patched_environ(environ):
        yield AwsConfig.from_environ().client("lambda"), invocations, environ


def _carry_out(started: StartedLoad, source: SourceObject, ledger: Ledger, job_name: str,
               invocations: LambdaInvocations | None, environ: dict[str, str]) -> None:
    """Do AWS's part for a load started on the emulator: run the loader's invocations, or
    the Glue run and its state change to the callback."""
    from dynamo_ingest.spark.runtime import local_runtime

    from dynamo_ingest_cli.local_flow import JobRunner, LocalDeployment, ensure_topic
    from dynamo_ingest_cli.main import run_with_cli_output
    from local_aws.orchestration import deliver_invocations, follow_run

    aws = AwsConfig.from_environ()
    deployment = LocalDeployment(job_name=job_name, ledger_table=ledger.table_name,
                                 topic_arn=ensure_topic(aws.client("sns")))
    if started.engine == "local" and invocations is not None:
        deliver_invocations(invocations, loader_settings=deployment.loader_settings(),
                            aws_environ=environ, run_load=_load_with_cli_output)
        return
    follow_run(glue=aws.client("glue"), ledger=ledger, source=source, job_name=job_name,
               run_id=started.job_run_id, callback_settings=deployment.callback_settings(),
               run_job=JobRunner(local_runtime(), run_with_cli_output), aws_environ={})


def _load_with_cli_output(args: JobArguments, job_run_id: str,
                          interrupt: Interrupt) -> RunReport:
    """The loader's load with `run`'s progress bar, summary and report."""
    from dynamo_ingest_cli.main import run_with_cli_output

    return run_with_cli_output(args, job_run_id=job_run_id, interrupt=interrupt)
