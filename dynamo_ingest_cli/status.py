"""`dynamo-ingest status` and `dynamo-ingest retry`: the ledger, read and acted on by hand."""

from __future__ import annotations

import json
import time
from datetime import datetime

from dynamo_ingest.control.ledger import Ledger, LedgerRecord, LedgerStatus
from dynamo_ingest.control.queue import TableOverview, table_overviews
from dynamo_ingest.control.s3_objects import move_object
from dynamo_ingest.core.aws import AwsConfig
from rich.console import Console
from rich.markup import escape
from rich.table import Table

RETRYABLE = frozenset({LedgerStatus.FAILED, LedgerStatus.CONCURRENCY_LIMITED,
                       LedgerStatus.START_FAILED})


def show_status(source: str | None, ledger_table: str, limit: int, out: Console) -> int:
    """Recent runs as a table, or one file's record in full (JSON); returns an exit code."""
    aws = AwsConfig.from_environ()
    ledger = Ledger(aws.client("dynamodb"), ledger_table)
    if source:
        record = ledger.find(source)
        if record is None:
            out.print(f"{source}: not in ledger table {ledger_table!r}")
            return 1
        out.print_json(json.dumps(record.to_dict(), default=str))
        return 0
    table = Table(title=f"recent runs ({ledger_table})")
    table.add_column("file", overflow="fold")
    # An emulator's ConsumedCapacity is not DynamoDB's (moto reports one unit per batch).
    wcu = "WCU (emulator's figure)" if "dynamodb" in aws.endpoints else "WCU"
    # The last run's own counts: a resumed run skips what earlier attempts wrote, so "read"
    # is written + rejected + dups + skipped, never a row unaccounted for.
    for column in ("status", "engine", "attempts", "read", "written", "rejected", "dups",
                   "skipped (resumed)", wcu, "updated"):
        table.add_column(column)
    records = ledger.recent(limit=None)
    for record in records[:limit]:
        table.add_row(record.source.uri, str(record.status), record.engine or "",
                      str(record.attempts),
                      f"{record.rows_read:,}", f"{record.items_written:,}",
                      f"{record.rows_rejected:,}", f"{record.duplicate_rows:,}",
                      f"{record.rows_skipped_by_resume:,}",
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
        engines = sorted({r.engine or "?" for r in view.running})
        table.add_row(view.table, _state_cell(view.queued, "received_at", now),
                      _state_cell(view.running, "started_at", now), ", ".join(engines),
                      _state_cell(view.done, "finished_at", now),
                      _state_cell(view.failed, "finished_at", now),
                      _state_cell(view.not_started, "received_at", now),
                      view.queued[0].source.uri if view.queued else "")
    return table


def retry_file(source: str, ledger_table: str, restart: bool, job_name: str, *,
               console: Console, out: Console) -> int:
    """Start a new run of a FAILED (or never started) file with its last run's arguments.

    The file is moved back from ``error/`` to its original key, a Glue job run is started
    (it resumes from the checkpoints unless ``restart``), and on a local emulator the run is
    executed here and its state change delivered to the callback, as AWS would.
    """
    aws = AwsConfig.from_environ()
    dynamodb, s3, glue = aws.client("dynamodb"), aws.client("s3"), aws.client("glue")
    ledger = Ledger(dynamodb, ledger_table)
    record = ledger.find(source)
    if record is None:
        console.print(f"[red]{escape(source)}: not in ledger table {ledger_table!r}[/red]")
        return 1
    if not record.source.bucket:
        # A Glue run reads S3 objects, and the callback moves files between folders of the
        # bucket: a local file is re-run where it is.
        console.print(f"[red]{escape(record.source.uri)} is a local file: retry re-runs files "
                      "of the event flow (s3://bucket/key); run it again with `dynamo-ingest "
                      "run --source_path …` (it resumes from its checkpoints)[/red]")
        return 1
    if record.status not in RETRYABLE:
        console.print(f"[red]{escape(record.source.uri)} is {record.status}: only FAILED or not "
                      "started files are retried (use `run --restart` to reload a file)[/red]")
        return 1
    original = record.source
    if record.file_location and record.file_location != original.uri:
        move_object(s3, record.file_location, original.uri)
        record = ledger.file_moved(original, record.job_run_id or "", original.uri)
    arguments = {k: v for k, v in record.arguments.items() if k != "--restart"}
    if restart:
        arguments["--restart"] = "true"
    run_id = str(glue.start_job_run(JobName=job_name, Arguments=arguments)["JobRunId"])
    console.print(f"started {job_name} run {run_id} for {original.uri}")
    if not aws.is_emulated:
        out.print(f"watch it with: dynamo-ingest status {original.uri}")
        return 0
    from dynamo_ingest.spark.runtime import local_runtime

    from dynamo_ingest_cli.local_flow import JobRunner, LocalDeployment, ensure_topic
    from dynamo_ingest_cli.main import run_with_cli_output
    from local_aws.orchestration import follow_run

    deployment = LocalDeployment(job_name=job_name, ledger_table=ledger_table,
                                 topic_arn=ensure_topic(aws.client("sns")))
    follow_run(glue=glue, ledger=ledger, source=original, job_name=job_name, run_id=run_id,
               callback_settings=deployment.callback_settings(),
               run_job=JobRunner(local_runtime(), run_with_cli_output), aws_environ={})
    final = ledger.get(original)
    out.print_json(json.dumps(final.to_dict() if final else {}, default=str))
    return 0 if final and final.status != LedgerStatus.FAILED else 1
