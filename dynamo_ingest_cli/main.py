"""``dynamo-ingest``: the job's CLI with Glue's argument names, plus local helpers."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from dynamo_ingest.arguments import DEFAULT_LEDGER_TABLE, JobArguments, job_arguments_from_mapping
from dynamo_ingest.errors import DynamoIngestError
from dynamo_ingest.interrupt import Interrupt, stop_on_signals
from dynamo_ingest.report import RunReport
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dynamo_ingest_cli.estimate_command import (  # the mapping options, shared with estimate
    _ColumnTypes,
    _DropColumns,
    _LoadTime,
    _PartitionKeyShards,
    _PartitionKeyTemplate,
    _Rename,
    _SortKeyTemplate,
    _TtlAttribute,
    _TtlFromColumn,
    _TtlSeconds,
    _VersionColumn,
    _WriteMode,
    estimate_command,
)
from dynamo_ingest_cli.local_flow import (
    LOCAL_BUCKET,
    LOCAL_CATALOG_TABLE,
    LOCAL_DATABASE,
    LOCAL_JOB,
    LOCAL_TABLE,
)

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()



def _opt(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}", help=help_text)


def summary_table(report: RunReport) -> Table:
    """The run report as a two-column table."""
    table = Table(title=f"dynamo-ingest: {report.status}", show_header=False)
    data = report.to_dict()
    for key in ("source_path", "target_table", "rows_read", "items_written", "rows_rejected",
                "duplicate_rows", "rows_skipped_by_resume", "wcu_consumed", "throttled_retries",
                "items_bounced", "write_rate_wcu_s", "partitions", "elapsed_s", "rejects_path",
                "error"):
        if data.get(key) is not None:
            table.add_row(key, str(data[key]))
    return table


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar of rows written; yields the job's progress callback or None."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("[bold]loading"), BarColumn(), TextColumn("{task.completed:,.0f} of "
                  "~{task.total:,.0f} rows"), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        task_id = bar.add_task("rows", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=max(total, done))

        yield update


def run_with_cli_output(args: JobArguments, runtime: Any = None, *, quiet: bool = False,
                        job_run_id: str | None = None,
                        interrupt: Interrupt | None = None) -> RunReport:
    """Run the job with a progress bar and print the summary and the JSON report."""
    from dynamo_ingest.job import run

    with progress_bar(not quiet and sys.stderr.isatty()) as progress:
        report = run(args, runtime, progress=progress, job_run_id=job_run_id,
                     interrupt=interrupt)
    console.print(summary_table(report))
    out.print_json(report.to_json())
    return report


# Option types, named after the command and option they serve.
_RunSourcePath = Annotated[str, _opt("source_path", "CSV to load: s3://bucket/key or a local path")]
_RunPartitionKey = Annotated[
    str | None,
    _opt("partition_key", "table's partition key (checked against DescribeTable)"),
]
_RunCatalogDatabase = Annotated[
    str | None,
    _opt("catalog_database", "Glue database of the crawled table"),
]
_RunCatalogTable = Annotated[
    str | None,
    _opt("catalog_table", "Glue table giving columns, types, delimiter, quote"),
]
_RunRejectsPath = Annotated[
    str | None,
    _opt("rejects_path", "rejects CSV (default: error/ beside the input)"),
]
_RunReportPath = Annotated[str | None, _opt("report_path", "write the JSON run report here")]
_RunEmptyValue = Annotated[str, _opt("empty_value", "empty field: omit | null | empty_string")]
_RunDelimiter = Annotated[
    str | None,
    _opt("delimiter", "field delimiter (default: catalog or detected)"),
]
_RunQuoteChar = Annotated[
    str | None,
    _opt("quote_char", "quote character (default: catalog or \")"),
]
_RunPartitions = Annotated[
    int | None,
    _opt("partitions", "write partitions (fixed per file for resume)"),
]
_RunWriteShare = Annotated[float, _opt("write_share", "share of the table's capacity when auto")]
_RunMaxRetrySeconds = Annotated[float, _opt("max_retry_seconds", "retry budget per batch")]
_RunLedgerTable = Annotated[str, _opt("ledger_table", "control table for runs and checkpoints")]
_RunCheckpointEvery = Annotated[
    str,
    _opt("checkpoint_every", "checkpoint every K acknowledged batches, or auto (a kill "
         "rewrites at most 1 % of the rows)"),
]
_RunRestart = Annotated[
    bool,
    typer.Option("--restart", help="ignore checkpoints and load from the start"),
]
_RunSourceEtag = Annotated[str | None, _opt("source_etag", "fail if the S3 object's ETag differs")]
_InitTargetTable = Annotated[str, _opt("target_table", "DynamoDB table to create if missing")]
_InitBucket = Annotated[str, _opt("bucket", "S3 bucket for incoming/, complete/, error/")]
_InitCatalogDatabase = Annotated[str, _opt("catalog_database", "Glue catalog database")]
_InitLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]
_CrawlCatalogTable = Annotated[str, _opt("catalog_table", "Glue table to create or update")]
_DemoWorkdir = Annotated[Path | None, typer.Option("--workdir", help="where the CSV is written")]
_StatusSource = Annotated[
    str | None,
    typer.Argument(help="s3://bucket/key (or local path) for one file's record"),
]
_StatusLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]
_RetryLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]


@app.command("run")
def run_command(
    source_path: _RunSourcePath,
    target_table: Annotated[str, _opt("target_table", "existing DynamoDB table")],
    partition_key: _RunPartitionKey = None,
    sort_key: Annotated[str | None, _opt("sort_key", "table's sort key (checked)")] = None,
    catalog_database: _RunCatalogDatabase = None,
    catalog_table: _RunCatalogTable = None,
    rejects_path: _RunRejectsPath = None,
    report_path: _RunReportPath = None,
    empty_value: _RunEmptyValue = "omit",
    delimiter: _RunDelimiter = None,
    quote_char: _RunQuoteChar = None,
    partitions: _RunPartitions = None,
    write_rate: Annotated[str, _opt("write_rate", "WCU/s for the whole job, or auto")] = "auto",
    write_share: _RunWriteShare = 0.9,
    max_retry_seconds: _RunMaxRetrySeconds = 300.0,
    ledger_table: _RunLedgerTable = DEFAULT_LEDGER_TABLE,
    checkpoint_every: _RunCheckpointEvery = "auto",
    restart: _RunRestart = False,
    source_etag: _RunSourceEtag = None,
    partition_key_template: _PartitionKeyTemplate = None,
    sort_key_template: _SortKeyTemplate = None,
    rename: _Rename = None,
    drop_columns: _DropColumns = None,
    column_types: _ColumnTypes = None,
    ttl_attribute: _TtlAttribute = None,
    ttl_from_column: _TtlFromColumn = None,
    ttl_seconds: _TtlSeconds = None,
    load_time: _LoadTime = None,
    partition_key_shards: _PartitionKeyShards = None,
    write_mode: _WriteMode = "overwrite",
    version_column: _VersionColumn = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Load one CSV into DynamoDB (the Glue job, run locally with the same arguments)."""
    values = {k: str(v) for k, v in locals().items()
              if v is not None and k not in ("quiet",) and not isinstance(v, bool)}
    values["restart"] = "true" if restart else "false"
    try:
        args = job_arguments_from_mapping(values)
    except DynamoIngestError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    # Ctrl-C or SIGTERM stops the load the way a failure does (report, ledger FAILED, resume).
    with stop_on_signals() as interrupt:
        report = run_with_cli_output(args, quiet=quiet, interrupt=interrupt)
    if interrupt.signal_name is not None:
        raise typer.Exit(128 + signal.Signals[interrupt.signal_name].value)
    raise typer.Exit(0 if report.status != "FAILED" else 1)


def _key(value: str) -> tuple[str, Literal["S", "N"]]:
    name, _, kind = value.partition(":")
    kind = (kind or "S").upper()
    if kind not in ("S", "N") or not name:
        raise typer.BadParameter(f"expected NAME or NAME:S or NAME:N, found {value!r}")
    return name, "N" if kind == "N" else "S"


app.command("estimate")(estimate_command)


@app.command("init")
def init_command(
    target_table: _InitTargetTable = LOCAL_TABLE,
    partition_key: Annotated[str, _opt("partition_key", "NAME[:S|N]")] = "orderId:S",
    sort_key: Annotated[str | None, _opt("sort_key", "NAME[:S|N]")] = None,
    bucket: _InitBucket = LOCAL_BUCKET,
    catalog_database: _InitCatalogDatabase = LOCAL_DATABASE,
    ledger_table: _InitLedgerTable = DEFAULT_LEDGER_TABLE,
) -> None:
    """Create (idempotently) what Terraform would, on the endpoint the AWS variables name."""
    from local_aws.resources import ensure_resources

    summary = ensure_resources(bucket=bucket, database=catalog_database, target_table=target_table,
                               partition_key=_key(partition_key),
                               sort_key=_key(sort_key) if sort_key else None,
                               ledger_table=ledger_table)
    table = Table(title=f"local resources ({summary.region})")
    for column in ("kind", "name", "state"):
        table.add_column(column)
    for resource in summary.resources:
        table.add_row(resource.kind, resource.name, "created" if resource.created else "exists")
    out.print(table)


@app.command("crawl")
def crawl_command(
    source_path: Annotated[str, _opt("source_path", "CSV to infer the schema from")],
    catalog_database: Annotated[str, _opt("catalog_database", "Glue database")] = LOCAL_DATABASE,
    catalog_table: _CrawlCatalogTable = LOCAL_CATALOG_TABLE,
) -> None:
    """Infer the CSV schema like Glue's classifier and register the catalog table."""
    from dynamo_ingest.aws import AwsConfig

    from crawlers.local_crawler import crawl

    aws = AwsConfig.from_environ()
    schema = crawl(aws.client("glue"), aws.client("s3"), source_path, catalog_database,
                   catalog_table)
    table = Table(title=f"{catalog_database}.{catalog_table}")
    table.add_column("column")
    table.add_column("type")
    for column in schema.columns:
        table.add_row(column.name, column.type)
    out.print(table)


@app.command("demo")
def demo_command(
    rows: Annotated[int, typer.Option("--rows", help="rows to generate")] = 100_000,
    workdir: _DemoWorkdir = None,
) -> None:
    """The whole flow on a local emulator: upload → trigger → Glue job → event → callback."""
    from dynamo_ingest_cli.demo import run_demo

    code = run_demo(rows=rows, workdir=workdir, console=console, out=out)
    raise typer.Exit(code)


@app.command("status")
def status_command(
    source: _StatusSource = None,
    ledger_table: _StatusLedgerTable = DEFAULT_LEDGER_TABLE,
    limit: Annotated[int, typer.Option("--limit", help="recent runs to list")] = 20,
) -> None:
    """Recent runs as a table, or one file's ledger record in full."""
    from dynamo_ingest_cli.status import show_status

    raise typer.Exit(show_status(source, ledger_table, limit, out))


@app.command("retry")
def retry_command(
    source: Annotated[str, typer.Argument(help="s3://bucket/key of a FAILED file")],
    ledger_table: _RetryLedgerTable = DEFAULT_LEDGER_TABLE,
    restart: Annotated[bool, typer.Option("--restart", help="ignore checkpoints")] = False,
    job_name: Annotated[str, _opt("job_name", "the Glue job to start")] = LOCAL_JOB,
) -> None:
    """Re-run a FAILED file by hand with the arguments of its last run (resumes)."""
    from dynamo_ingest_cli.status import retry_file

    raise typer.Exit(retry_file(source, ledger_table, restart, job_name, console=console,
                                out=out))


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=os.environ.get("DYNAMO_INGEST_LOG", "WARNING"))
    app()


if __name__ == "__main__":
    main()
