"""dynamo-ingest: the job's CLI with Glue's argument names, plus local helpers."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from dynamo_ingest.control.interrupt import Interrupt, stop_on_signals
from dynamo_ingest.core.arguments import (
    DEFAULT_LEDGER_TABLE,
    JobArguments,
    job_arguments_from_mapping,
)
from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError
from dynamo_ingest.core.keys import KeyType, key_attribute_from_argument
from dynamo_ingest.core.report import RunReport
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dynamo_ingest_cli.estimate_command import estimate_command
from dynamo_ingest_cli.flow import DEFAULT_MAX_CONCURRENT_RUNS, FLOW_OWNED_OPTIONS
from dynamo_ingest_cli.job_options import GlueStyleCommand, glue_values, job_options
from dynamo_ingest_cli.local_flow import (
    LOCAL_BUCKET,
    LOCAL_CATALOG_TABLE,
    LOCAL_DATABASE,
    LOCAL_JOB,
    LOCAL_TABLE,
)
from dynamo_ingest_cli.terminal import fit_to_output
from local_aws.orchestration import LOADER_FUNCTION
from trigger_lambda.routing import DEFAULT_SMALL_FILE_BYTES

LOG = logging.getLogger("dynamo_ingest")
app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()


def print_error(err: BaseException | str, target: Console | None = None) -> None:
    """One line: our errors say what was expected, found and to do; no traceback."""
    (target or console).print(Text.assemble(("error: ", "red"), str(err)), soft_wrap=True)


def _opt(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}", help=help_text)


def summary_table(report: RunReport, emulator: str | None = None) -> Table:
    """The run report as a two-column table.

    ``emulator`` names the DynamoDB emulator the run wrote to: its ConsumedCapacity is not
    DynamoDB's (moto counts one unit per batch), so it is labelled as the emulator's (the job
    prices such a run from the item sizes).
    """
    table = Table(title=f"dynamo-ingest: {report.status}", show_header=False)
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    data = report.to_dict()
    for key in ("source_path", "target_table", "rows_read", "items_written", "rows_rejected",
                "duplicate_rows", "rows_skipped_by_resume", "wcu_estimated", "wcu_consumed",
                "write_cost_on_demand_usd", "throttled_retries", "items_bounced",
                "write_rate_wcu_s", "partitions", "elapsed_s", "rejects_path", "error"):
        if data.get(key) is not None:
            table.add_row(key, _summary_value(key, data, emulator))
    return table


def _summary_value(key: str, data: dict[str, Any], emulator: str | None) -> str:
    if key == "wcu_estimated":
        return f"{data[key]:,} (from the item sizes)"
    if key == "wcu_consumed" and emulator:
        return f"{data[key]:,} as reported by {emulator}, not DynamoDB's figure"
    if key == "write_cost_on_demand_usd":
        return f"{data[key]} (priced from {data.get('write_cost_basis', 'wcu_consumed')})"
    return str(data[key])


def dynamodb_emulator() -> str | None:
    """The DynamoDB endpoint the AWS variables name, as the emulator it is; None on AWS."""
    from dynamo_ingest.core.aws import AwsConfig

    endpoint = AwsConfig.from_environ().endpoints.get("dynamodb")
    return f"the emulator at {endpoint}" if endpoint else None


class RowsColumn(ProgressColumn):
    """Rows written, and of how many once the job has estimated the file's rows."""

    def render(self, task: Task) -> Text:
        if task.total is None:  # before the first poll: no estimate yet
            return Text(f"{task.completed:,.0f} rows")
        return Text(f"{task.completed:,.0f} of ~{task.total:,.0f} rows")


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A rich progress bar of rows written; yields the job's progress callback or None."""
    if not enabled:
        yield None
        return
    with Progress(TextColumn("[bold]loading"), BarColumn(), RowsColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task_id = bar.add_task("rows", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task_id, completed=done, total=max(total, done))

        yield update


def run_with_cli_output(args: JobArguments, runtime: Any = None, *, quiet: bool = False,
                        job_run_id: str | None = None,
                        emulator: str | None = None,
                        interrupt: Interrupt | None = None) -> RunReport:
    """Run the job with a progress bar and print the summary and the JSON report;
    ``emulator`` names the DynamoDB emulator (default: read from the endpoint variables)."""
    from dynamo_ingest.job import run

    with progress_bar(not quiet and console.is_terminal) as progress:
        report = run(args, runtime, progress=progress, job_run_id=job_run_id,
                     interrupt=interrupt)
    console.print(summary_table(report, emulator or dynamodb_emulator()))
    out.print_json(report.to_json())
    return report


# Option types, named after the command and option they serve.
_InitTargetTable = Annotated[str, _opt("target_table", "DynamoDB table to create if missing")]
_InitBucket = Annotated[str, _opt("bucket", "S3 bucket for incoming/, complete/, error/")]
_InitCatalogDatabase = Annotated[str, _opt("catalog_database", "Glue catalog database")]
_InitLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]
_CrawlCatalogTable = Annotated[str, _opt("catalog_table", "Glue table to create or update")]
_DemoWorkdir = Annotated[Path | None, typer.Option("--workdir", help="where the CSV is written")]
_DemoOverwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="load into the endpoint's demo table even if it holds items"),
]
_StatusSource = Annotated[
    str | None,
    typer.Argument(help="s3://bucket/key (or local path) for one file's record"),
]
_StatusLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]
_RetryLedgerTable = Annotated[str, _opt("ledger_table", "ledger control table")]


@app.command("run", cls=GlueStyleCommand)
@job_options("run")
def run_command(
    *,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    **job_values: str | bool | None,
) -> None:
    """Load one CSV into DynamoDB (the Glue job, run locally with the same arguments)."""
    from dynamo_ingest.control.output_paths import refuse_unwritable_outputs

    try:
        args = job_arguments_from_mapping(glue_values(job_values))
        refuse_unwritable_outputs(args)
    except DynamoIngestError as err:
        print_error(err)
        raise typer.Exit(2) from err
    # Ctrl-C or SIGTERM stops the load the way a failure does (report, ledger FAILED, resume).
    with stop_on_signals() as interrupt:
        report = run_with_cli_output(args, quiet=quiet, interrupt=interrupt)
    if interrupt.signal_name is not None:
        raise typer.Exit(128 + signal.Signals[interrupt.signal_name].value)
    if report.extra.get("report_path_error"):
        print_error(report.extra["report_path_error"])
        raise typer.Exit(1)
    raise typer.Exit(0 if report.status != "FAILED" else 1)


def _key(option: str, value: str) -> tuple[str, KeyType]:
    try:
        attribute = key_attribute_from_argument(option, value)
    except ArgumentError as err:
        raise typer.BadParameter(str(err)) from err
    return attribute.name, attribute.type


app.command("estimate", cls=GlueStyleCommand)(estimate_command)


@app.command("init")
def init_command(
    target_table: _InitTargetTable = LOCAL_TABLE,
    partition_key: Annotated[str, _opt("partition_key", "NAME[:S|N|B]")] = "orderId:S",
    sort_key: Annotated[str | None, _opt("sort_key", "NAME[:S|N|B]")] = None,
    bucket: _InitBucket = LOCAL_BUCKET,
    catalog_database: _InitCatalogDatabase = LOCAL_DATABASE,
    ledger_table: _InitLedgerTable = DEFAULT_LEDGER_TABLE,
) -> None:
    """Create (idempotently) what Terraform would, on the endpoint the AWS variables name."""
    from local_aws.resources import ensure_resources

    summary = ensure_resources(bucket=bucket, database=catalog_database, target_table=target_table,
                               partition_key=_key("partition_key", partition_key),
                               sort_key=_key("sort_key", sort_key) if sort_key else None,
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
    encoding: Annotated[str | None, _opt(
        "encoding", "the file's encoding (utf-8, utf-16, cp1252, latin-1 …), recorded as the "
        "table's serialization.encoding")] = None,
) -> None:
    """Infer the CSV schema like Glue's classifier and register the catalog table."""
    from dynamo_ingest.core.aws import AwsConfig
    from dynamo_ingest.core.formats import UnknownEncodingError, normalise_encoding

    from crawlers.local_crawler import crawl

    aws = AwsConfig.from_environ()
    try:
        chosen = normalise_encoding(encoding) if encoding else None
    except UnknownEncodingError as err:
        raise typer.BadParameter(str(err), param_hint="--encoding") from err
    schema = crawl(aws.client("glue"), aws.client("s3"), source_path, catalog_database,
                   catalog_table, encoding=chosen)
    table = Table(title=f"{catalog_database}.{catalog_table}")
    table.add_column("column", overflow="fold")
    table.add_column("type")
    for column in schema.columns:
        table.add_row(column.name, column.type)
    out.print(table)


@app.command("demo", cls=GlueStyleCommand)
def demo_command(
    rows: Annotated[int, typer.Option(
        "--rows", help="rows of the main file (a file over the small-file threshold goes to "
        "Glue, and a 10,000-row file goes first, through the loader Lambda)")] = 100_000,
    workdir: _DemoWorkdir = None,
    overwrite: _DemoOverwrite = False,
) -> None:
    """The whole flow on a local emulator: upload → trigger → the loader Lambda (small files)
    or a Glue job → event → callback."""
    from dynamo_ingest_cli.demo import run_demo

    code = run_demo(rows=rows, workdir=workdir, console=console, out=out, overwrite=overwrite)
    raise typer.Exit(code)


_FlowFiles = Annotated[list[Path], typer.Argument(
    help="CSV files, uploaded in this order; each becomes incoming/<its name>, so the names "
    "must differ")]
_FlowRuns = Annotated[int, typer.Option(
    "--max_concurrent_runs", help="the Glue job's MaxConcurrentRuns (Terraform's default)")]
_FlowOrder = Annotated[str, typer.Option(
    "--upload_order", help="serial: one file of the table at a time, in upload order; "
    "parallel: files that never overlap or carry --version_column load at once")]
_FlowSeed = Annotated[int, typer.Option("--seed", help="seed of the delivery order")]
_FlowDuplicates = Annotated[float, typer.Option(
    "--duplicate_share", help="share of S3 events delivered twice")]
_SmallFileBytes = Annotated[int, typer.Option(
    "--small_file_bytes", help="files under this size load in the loader Lambda (in-process "
    "engine), bigger ones as Glue runs; Terraform's small_file_bytes (default 16 MiB); "
    "0: every file to Glue")]


@app.command("flow", cls=GlueStyleCommand)
@job_options("run", exclude=FLOW_OWNED_OPTIONS)
def flow_command(
    files: _FlowFiles,
    *,
    max_concurrent_runs: _FlowRuns = DEFAULT_MAX_CONCURRENT_RUNS,
    upload_order: _FlowOrder = "serial",
    seed: _FlowSeed = 0,
    duplicate_share: _FlowDuplicates = 0.25,
    small_file_bytes: _SmallFileBytes = DEFAULT_SMALL_FILE_BYTES,
    **job_values: str | bool | None,
) -> None:
    """Many files through the local event flow, as AWS would deliver them, until settled:
    small files through the loader Lambda, bigger ones through Glue. The job options and
    --max_concurrent_runs are applied to the Glue job even if an earlier flow made it. On the
    embedded moto server a missing target table is created; on an endpoint you set, the
    table must exist."""
    from dynamo_ingest_cli.flow import FlowOptions, run_flow

    try:
        options = FlowOptions(tuple(files), glue_values(
            {f"--{k}": v for k, v in job_values.items()}),
            max_concurrent_runs=max_concurrent_runs, upload_order=upload_order, seed=seed,
            duplicate_share=duplicate_share, small_file_bytes=small_file_bytes)
    except DynamoIngestError as err:
        print_error(err)
        raise typer.Exit(2) from err
    raise typer.Exit(run_flow(options, console=console, out=out))


@app.command("status")
def status_command(
    source: _StatusSource = None,
    ledger_table: _StatusLedgerTable = DEFAULT_LEDGER_TABLE,
    limit: Annotated[int, typer.Option("--limit", help="recent runs to list")] = 20,
) -> None:
    """Recent runs as a table, or one file's ledger record in full."""
    from dynamo_ingest_cli.status import show_status

    raise typer.Exit(show_status(source, ledger_table, limit, out))


@app.command("retry", cls=GlueStyleCommand)
def retry_command(
    source: Annotated[str, typer.Argument(help="s3://bucket/key of a FAILED file")],
    ledger_table: _RetryLedgerTable = DEFAULT_LEDGER_TABLE,
    restart: Annotated[bool, typer.Option("--restart", help="ignore checkpoints")] = False,
    job_name: Annotated[str, _opt("job_name", "the Glue job to start")] = LOCAL_JOB,
    loader_function: Annotated[str, _opt(
        "loader_function", "the loader Lambda for small files (Terraform's <prefix>-loader; "
        "'': every file to Glue)")] = LOADER_FUNCTION,
    small_file_bytes: _SmallFileBytes = DEFAULT_SMALL_FILE_BYTES,
) -> None:
    """Re-run a FAILED file by hand with the arguments of its last run (resumes), routed as
    the trigger routes it: a small file in the loader Lambda, a bigger one as a Glue run."""
    from dynamo_ingest_cli.status import retry_file

    raise typer.Exit(retry_file(source, ledger_table, restart, job_name, console=console,
                                out=out, loader_function=loader_function,
                                small_file_bytes=small_file_bytes))


# What a command that reads AWS says without a region. The local flows (demo, flow) set
# their own region and endpoint for an embedded moto that ends with them, so a user running
# status or retry after one meets this first.
NO_REGION = ("no AWS region is set: set AWS_DEFAULT_REGION (or a profile's region); for a "
             "local endpoint, also set AWS_ENDPOINT_URL to it (`dynamo-ingest demo` and `flow` "
             "without it run on an embedded moto server whose ledger ends with them)")


def main() -> None:
    """Console-script entry point: our errors, and botocore's, end the command as one line."""
    from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

    logging.basicConfig(level=os.environ.get("DYNAMO_INGEST_LOG", "WARNING"))
    fit_to_output(console, out)
    try:
        app()
    except DynamoIngestError as err:
        print_error(err)
        sys.exit(1 if err.retryable else 2)
    except NoRegionError:
        print_error(NO_REGION)
        sys.exit(2)
    except (BotoCoreError, ClientError) as err:
        LOG.debug("AWS call failed", exc_info=True)
        print_error(f"{type(err).__name__}: {err} (DYNAMO_INGEST_LOG=DEBUG shows where)")
        sys.exit(1)


if __name__ == "__main__":
    main()
