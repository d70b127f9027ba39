"""`dynamo-ingest demo`: the whole flow on a local emulator.

Starts an embedded moto server (unless the AWS endpoint variables are set: then it uses
them and leaves the data there), creates what Terraform would, generates realistic CSVs and
carries each through the event flow: uploaded to ``incoming/``, the S3 notification delivered
to the trigger, which hands a small file to the loader Lambda (run here with its payload) and
starts a Glue run for a big one (run here, its state change delivered to the callback). It
prints, per file, which engine took it, where it ended up and how long that took, and a check
of the table against an independent oracle.

On the user's endpoint the demo table may hold someone's data: the demo refuses to load into
a table that holds items unless told ``overwrite`` (a fresh table name per run would litter
the endpoint with tables, and the README points users at ``orders`` to inspect the result).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import DynamoIngestError
from dynamo_ingest.core.report import RowCounts, RunReport
from dynamo_ingest.estimate import Prices
from rich.console import Console
from rich.table import Table

from dynamo_ingest_cli.local_flow import JobRunner, LocalDeployment, ensure_topic
from local_aws.moto_server import (
    MotoServer,
    endpoint_configured,
    local_environment,
    patched_environ,
)

# moto answers a BatchWriteItem's ConsumedCapacity with one unit per call, whatever the items:
# 4,000 units for 99,980 one-unit items. Its figure is shown as moto's, never as DynamoDB's.
MOTO = "moto"
MOTO_CAPACITY_NOTE = "moto under-reports batch capacity (one unit per BatchWriteItem call)"


class DemoTableInUseError(DynamoIngestError):
    """The demo's target table on the user's endpoint already holds items."""

    retryable = False


@dataclass(frozen=True)
class Endpoint:
    """Where the demo runs: the environment it set (empty: the user's) and what it knows."""

    environ: dict[str, str]
    embedded_moto: bool


@contextlib.contextmanager
def local_endpoint(console: Console) -> Iterator[Endpoint]:
    """The endpoint to use: the user's endpoint variables, or an embedded moto server."""
    if endpoint_configured():
        console.print("using the AWS endpoint variables already set (data stays there)")
        yield Endpoint({}, embedded_moto=False)
        return
    with MotoServer() as server:
        console.print(f"embedded moto server at {server.url}")
        env = local_environment(server.url)
        with patched_environ(env):
            yield Endpoint(env, embedded_moto=True)


def count_items(dynamodb: Any, table: str, *, live_item_count: bool = False) -> int:
    """Items in a table, counted with a paginated ``Scan(Select=COUNT)``.

    DescribeTable's ItemCount is not live on dynalite (and AWS refreshes it about every six
    hours), so it is used only where the caller knows it is live: the demo's own moto, whose
    Scan re-reads the whole table for every page (about 24 s for 100,000 items).
    """
    if live_item_count:
        return int(dynamodb.describe_table(TableName=table)["Table"].get("ItemCount", 0))
    total = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT"):
        total += int(page["Count"])
    return total


def table_items_before(dynamodb: Any, table: str, *, overwrite: bool) -> int:
    """Items the demo's target table holds before the load (0 when it does not exist);
    raises :class:`DemoTableInUseError` for a table with items unless ``overwrite``."""
    try:
        dynamodb.describe_table(TableName=table)
    except dynamodb.exceptions.ResourceNotFoundException:
        return 0
    if not dynamodb.scan(TableName=table, Limit=1, Select="COUNT")["Count"]:
        return 0
    if not overwrite:
        raise DemoTableInUseError(
            f"expected no items in the demo's table {table!r} on the endpoint the AWS variables "
            "name, found some: it may be your data. Pass --overwrite to load the demo into it "
            "anyway, or unset the AWS_ENDPOINT_URL* variables to run on an embedded moto")
    return count_items(dynamodb, table)


def capacity_rows(reports: list[RunReport], emulator: str) -> list[tuple[str, str]]:
    """Write units and cost of the demo's job runs: estimated from the item sizes (what
    DynamoDB would charge), and what the emulator reported, labelled as the emulator's."""
    counts = RowCounts()
    for report in reports:
        counts.add(report.counts)
    cost = Prices().on_demand_usd(counts.wcu_estimated)
    note = MOTO_CAPACITY_NOTE if emulator == MOTO else "an emulator's figure"
    return [("write units (estimated from item sizes)", f"{counts.wcu_estimated:,}"),
            ("write cost on demand (estimated)", f"${cost:,.4f}"),
            (f"write units as reported by {emulator}",
             f"{counts.wcu_consumed:,.0f}: {note}, not DynamoDB's figure")]


def outcome_table(rows: Iterable[tuple[str, object]]) -> Table:
    """The demo's outcome, one named value a row; long values fold instead of being cut."""
    table = Table(title="demo outcome", show_header=False)
    table.add_column("what", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in rows:
        table.add_row(name, str(value))
    return table


@dataclass(frozen=True)
class DemoFile:
    """One file the demo loaded: where it went, which engine took it and how long it took."""

    key: str
    rows: int
    bytes: int
    engine: str | None
    final_location: str | None
    status: str
    attempts: int
    seconds: float  # from the S3 event to the file's final place
    reports: tuple[RunReport, ...] = ()  # the loader Lambda's runs (Glue's: the job runner's)


def demo_files(rows: int, small_rows: int, small_file_bytes: int) -> list[tuple[str, int]]:
    """The files the demo loads (name, rows): the ``rows`` file, and before it a small one
    for the Lambda path when the ``rows`` file is big enough to go to Glue (about 200 bytes a
    row)."""
    files = [("orders", rows)]
    if small_rows and rows * 200 >= small_file_bytes:
        files.insert(0, ("orders-small", small_rows))
    return files


def run_demo(*, rows: int, workdir: Path | None, console: Console, out: Console,
             duplicate_every: int | None = 5000, bad_every: int | None = 10000,
             overwrite: bool = False, small_rows: int = 10_000,
             small_file_bytes: int | None = None) -> int:
    """Run the demo; returns the process exit code (0 when every file ended in complete/
    and the table holds exactly the oracle's items).

    Raises :class:`DemoTableInUseError` when the user's demo table holds items and
    ``overwrite`` is not given (the CLI prints it as one line and exits 2).
    ``small_file_bytes`` overrides the trigger's threshold between the loader Lambda and Glue.
    """
    from dynamo_ingest_cli.datagen import generate_csv
    from local_aws.orchestration import LOADER_FUNCTION

    started = time.monotonic()
    workdir = workdir or Path("demo-data")
    workdir.mkdir(parents=True, exist_ok=True)
    with local_endpoint(console) as endpoint:
        aws = AwsConfig.from_environ()
        deployment = LocalDeployment(topic_arn=ensure_topic(aws.client("sns")),
                                     loader_function=LOADER_FUNCTION)
        if small_file_bytes is not None:
            deployment = replace(deployment, small_file_bytes=small_file_bytes)
        before = _deploy(aws, deployment, overwrite=overwrite)
        generated = []
        for name, count in demo_files(rows, small_rows, deployment.small_file_bytes):
            console.print(f"generating {count:,} rows ({name}.csv) …")
            generated.append(generate_csv(workdir / f"{name}.csv", count,
                                          duplicate_every=duplicate_every, bad_every=bad_every))
        _register_schema(aws, deployment, generated[-1].path, workdir)
        emulator = (MOTO if endpoint.embedded_moto
                    else f"the endpoint at {aws.endpoints.get('dynamodb', 'AWS')}")
        runner = _job_runner(emulator)
        loaded = [_load_through_the_flow(aws, deployment, file.path, file.rows, runner,
                                         endpoint.environ, console) for file in generated]
        return _check_and_report(aws, deployment, generated, loaded, before, runner, emulator,
                                 embedded_moto=endpoint.embedded_moto, started=started,
                                 console=console, out=out)


def _check_and_report(aws: AwsConfig, deployment: LocalDeployment, generated: list[Any],
                      loaded: list[DemoFile], before: int, runner: JobRunner, emulator: str, *,
                      embedded_moto: bool, started: float, console: Console,
                      out: Console) -> int:
    """Compare the table with the oracle (every file's keys), print the summary; the exit
    code is 0 when every file ended in complete/ and the table holds what it should."""
    expected = len(set().union(*(file.expected_items() for file in generated)))
    in_table = count_items(aws.client("dynamodb"), deployment.target_table,
                           live_item_count=embedded_moto)
    checked = before == 0  # items that were there before make the count no check
    out.print(outcome_table(_summary(loaded, in_table, expected, before, checked,
                                     capacity_rows([*runner.reports,
                                                    *(r for f in loaded for r in f.reports)],
                                                   emulator),
                                     time.monotonic() - started)))
    ok = (all(f.status in ("SUCCEEDED", "SUCCEEDED_WITH_REJECTS")
              and "/complete/" in f"/{f.final_location or ''}" for f in loaded)
          and (in_table == expected or not checked))
    if not ok:
        console.print("[red]the demo did not end as expected[/red]")
    return 0 if ok else 1


def _deploy(aws: AwsConfig, deployment: LocalDeployment, *, overwrite: bool) -> int:
    """Create what Terraform would; returns the items the target table held before."""
    from local_aws.orchestration import ensure_local_job
    from local_aws.resources import ensure_resources

    before = table_items_before(aws.client("dynamodb"), deployment.target_table,
                                overwrite=overwrite)
    ensure_resources(bucket=deployment.bucket, database=deployment.database,
                     target_table=deployment.target_table,
                     partition_key=(deployment.partition_key, "S"), sort_key=None,
                     ledger_table=deployment.ledger_table)
    ensure_local_job(aws.client("glue"), deployment.job_name, max_concurrent_runs=1)
    return before


def _register_schema(aws: AwsConfig, deployment: LocalDeployment, path: Path,
                     workdir: Path) -> None:
    """The crawler reads a sample under schema/ (crawlers/README.md); the catalog table it
    registers gives the loads their column types."""
    from crawlers.local_crawler import crawl

    s3 = aws.client("s3")
    sample = workdir / "orders-sample.csv"
    with path.open("rb") as full, sample.open("wb") as part:
        part.write(full.read(256 * 1024))
    s3.upload_file(str(sample), deployment.bucket, "schema/orders.csv")
    crawl(aws.client("glue"), s3, f"s3://{deployment.bucket}/schema/orders.csv",
          deployment.database, deployment.catalog_table)


def _job_runner(emulator: str) -> JobRunner:
    """The Glue job run the way Glue would; Spark starts only if a file goes to Glue."""
    from dynamo_ingest.spark.runtime import local_runtime

    from dynamo_ingest_cli.main import run_with_cli_output

    return JobRunner(None, functools.partial(run_with_cli_output, emulator=emulator),
                     runtime_factory=local_runtime)


def _load_through_the_flow(aws: AwsConfig, deployment: LocalDeployment, path: Path, rows: int,
                           runner: JobRunner, environ: dict[str, str],
                           console: Console) -> DemoFile:
    """Upload one file to incoming/ and carry it through the event flow."""
    from local_aws.orchestration import run_local_flow

    s3 = aws.client("s3")
    key = f"incoming/{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    s3.upload_file(str(path), deployment.bucket, key)
    size = path.stat().st_size
    console.print(f"uploaded s3://{deployment.bucket}/{key} ({size / 1e6:.1f} MB); "
                  "delivering the S3 event …")
    began = time.monotonic()
    result = run_local_flow(s3=s3, glue=aws.client("glue"), dynamodb=aws.client("dynamodb"),
                            bucket=deployment.bucket, key=key,
                            trigger_settings=deployment.trigger_settings(),
                            callback_settings=deployment.callback_settings(),
                            loader_settings=deployment.loader_settings(),
                            run_job=runner, aws_environ=environ)
    record = result.record
    return DemoFile(f"s3://{deployment.bucket}/{key}", rows, size, result.engine,
                    result.file_location, str(record.status), record.attempts,
                    time.monotonic() - began,
                    tuple(RunReport.from_dict(r["report"]) for r in result.loader_results
                          if r.get("report")))


ENGINE_NAMES = {"local": "loader Lambda (in-process engine)", "spark": "Glue job (Spark)"}


def _summary(loaded: list[DemoFile], in_table: int, expected: int, before: int, checked: bool,
             capacity: list[tuple[str, str]], total_s: float) -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for file in loaded:
        rows += [("file", f"{file.key} ({file.rows:,} rows, {file.bytes / 1e6:.1f} MB)"),
                 ("  loaded by", ENGINE_NAMES.get(file.engine or "", file.engine)),
                 ("  final location", file.final_location),
                 ("  ledger status (attempts)", f"{file.status} ({file.attempts})"),
                 ("  event to final location", f"{file.seconds:.1f} s")]
    rows += [("items in table (expected)", f"{in_table:,} ({expected:,})" if checked else
              f"{in_table:,} (held {before:,} before the load: not compared with the oracle)"),
             *capacity, ("total time", f"{total_s:.1f} s")]
    return rows
