"""`dynamo-ingest demo`: the whole flow on a local emulator.

Starts an embedded moto server (unless the AWS endpoint variables are set: then it uses
them and leaves the data there), creates what Terraform would, generates a realistic CSV,
uploads it to ``incoming/``, delivers the S3 notification to the trigger, runs the Glue job
run the trigger started, delivers the state change to the callback, and prints where the
file ended up, the ledger record and a check of the table against an independent oracle.

On the user's endpoint the demo table may hold someone's data: the demo refuses to load into
a table that holds items unless told ``overwrite`` (a fresh table name per run would litter
the endpoint with tables, and the README points users at ``orders`` to inspect the result).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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


def run_demo(*, rows: int, workdir: Path | None, console: Console, out: Console,
             duplicate_every: int | None = 5000, bad_every: int | None = 10000,
             overwrite: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when the file ended in complete/).

    Raises :class:`DemoTableInUseError` when the user's demo table holds items and
    ``overwrite`` is not given (the CLI prints it as one line and exits 2).
    """
    from dynamo_ingest.spark.runtime import local_runtime

    from crawlers.local_crawler import crawl
    from dynamo_ingest_cli.datagen import generate_csv
    from dynamo_ingest_cli.main import run_with_cli_output
    from local_aws.orchestration import ensure_local_job, run_local_flow
    from local_aws.resources import ensure_resources

    started = time.monotonic()
    workdir = workdir or Path("demo-data")
    workdir.mkdir(parents=True, exist_ok=True)
    with local_endpoint(console) as endpoint:
        env = endpoint.environ
        aws = AwsConfig.from_environ()
        s3, glue, dynamodb = aws.client("s3"), aws.client("glue"), aws.client("dynamodb")
        deployment = LocalDeployment(topic_arn=ensure_topic(aws.client("sns")))
        before = table_items_before(dynamodb, deployment.target_table, overwrite=overwrite)
        ensure_resources(bucket=deployment.bucket, database=deployment.database,
                         target_table=deployment.target_table,
                         partition_key=(deployment.partition_key, "S"), sort_key=None,
                         ledger_table=deployment.ledger_table)
        ensure_local_job(glue, deployment.job_name, max_concurrent_runs=1)
        console.print(f"generating {rows:,} rows …")
        generated = generate_csv(workdir / "orders.csv", rows, duplicate_every=duplicate_every,
                                 bad_every=bad_every)
        # The crawler reads a sample under schema/ (crawlers/README.md); the catalog table
        # it registers gives the job its column types.
        sample = workdir / "orders-sample.csv"
        with generated.path.open("rb") as full, sample.open("wb") as part:
            part.write(full.read(256 * 1024))
        s3.upload_file(str(sample), deployment.bucket, "schema/orders.csv")
        crawl(glue, s3, f"s3://{deployment.bucket}/schema/orders.csv", deployment.database,
              deployment.catalog_table)
        key = f"incoming/orders-{time.strftime('%Y%m%d-%H%M%S')}.csv"
        s3.upload_file(str(generated.path), deployment.bucket, key)
        console.print(f"uploaded s3://{deployment.bucket}/{key} "
                      f"({generated.bytes / 1e6:.1f} MB); delivering the S3 event …")
        emulator = (MOTO if endpoint.embedded_moto
                    else f"the endpoint at {aws.endpoints.get('dynamodb', 'AWS')}")
        runner = JobRunner(local_runtime(),
                           functools.partial(run_with_cli_output, emulator=emulator))
        result = run_local_flow(s3=s3, glue=glue, dynamodb=dynamodb, bucket=deployment.bucket,
                                key=key, trigger_settings=deployment.trigger_settings(),
                                callback_settings=deployment.callback_settings(),
                                run_job=runner, aws_environ=env)
        record = result.record
        expected = generated.expected_item_count
        in_table = count_items(dynamodb, deployment.target_table,
                               live_item_count=endpoint.embedded_moto)
        checked = before == 0  # items that were there before make the count no check
        out.print(outcome_table((
            ("file", f"s3://{deployment.bucket}/{key}"),
            ("final location", result.file_location),
            ("ledger status", record.status),
            ("attempts", record.attempts),
            ("rows read / written / rejected / duplicates",
             f"{record.rows_read:,} / {record.items_written:,} / {record.rows_rejected:,} / "
             f"{record.duplicate_rows:,}"),
            ("rejects", record.rejects_location),
            ("items in table (expected)", f"{in_table:,} ({expected:,})" if checked else
             f"{in_table:,} (held {before:,} before the load: not compared with the oracle)"),
            *capacity_rows(runner.reports, emulator),
            ("total time", f"{time.monotonic() - started:.1f} s"),
        )))
        ok = (record.status in ("SUCCEEDED", "SUCCEEDED_WITH_REJECTS")
              and (in_table == expected or not checked)
              and "/complete/" in f"/{result.file_location or ''}")
        if not ok:
            console.print("[red]the demo did not end as expected[/red]")
        return 0 if ok else 1
