"""`dynamo-ingest demo`: the whole flow on a local emulator.

Starts an embedded moto server (unless the AWS endpoint variables are set: then it uses
them and leaves the data there), creates what Terraform would, generates a realistic CSV,
uploads it to ``incoming/``, delivers the S3 notification to the trigger, runs the Glue job
run the trigger started, delivers the state change to the callback, and prints where the
file ended up, the ledger record and a check of the table against an independent oracle.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dynamo_ingest.aws import AwsConfig
from rich.console import Console
from rich.table import Table

from dynamo_ingest_cli.local_flow import JobRunner, LocalDeployment, ensure_topic
from local_aws.moto_server import (
    MotoServer,
    endpoint_configured,
    local_environment,
    patched_environ,
)


@contextlib.contextmanager
def local_endpoint(console: Console) -> Iterator[dict[str, str]]:
    """The environment to use: the user's endpoint variables, or an embedded moto server."""
    if endpoint_configured():
        console.print("using the AWS endpoint variables already set (data stays there)")
        yield {}
        return
    with MotoServer() as server:
        console.print(f"embedded moto server at {server.url}")
        env = local_environment(server.url)
        with patched_environ(env):
            yield env


def count_items(dynamodb: Any, table: str) -> int:
    """Items in a table: DescribeTable's ItemCount, which moto and DynamoDB Local keep live
    (AWS refreshes it about every six hours; a COUNT scan of moto would cost minutes)."""
    return int(dynamodb.describe_table(TableName=table)["Table"].get("ItemCount", 0))


def run_demo(*, rows: int, workdir: Path | None, console: Console, out: Console,
             duplicate_every: int | None = 5000, bad_every: int | None = 10000) -> int:
    """Run the demo; returns the process exit code (0 when the file ended in complete/)."""
    from dynamo_ingest.runtime import local_runtime

    from crawlers.local_crawler import crawl
    from dynamo_ingest_cli.datagen import generate_csv
    from dynamo_ingest_cli.main import run_with_cli_output
    from local_aws.orchestration import ensure_local_job, run_local_flow
    from local_aws.resources import ensure_resources

    started = time.monotonic()
    workdir = workdir or Path("demo-data")
    workdir.mkdir(parents=True, exist_ok=True)
    with local_endpoint(console) as env:
        aws = AwsConfig.from_environ()
        s3, glue, dynamodb = aws.client("s3"), aws.client("glue"), aws.client("dynamodb")
        deployment = LocalDeployment(topic_arn=ensure_topic(aws.client("sns")))
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
        runner = JobRunner(local_runtime(), run_with_cli_output)
        result = run_local_flow(s3=s3, glue=glue, dynamodb=dynamodb, bucket=deployment.bucket,
                                key=key, trigger_settings=deployment.trigger_settings(),
                                callback_settings=deployment.callback_settings(),
                                run_job=runner, aws_environ=env)
        record = result.record
        expected = generated.expected_item_count
        in_table = count_items(dynamodb, deployment.target_table)
        table = Table(title="demo outcome", show_header=False)
        for name, value in (
            ("file", f"s3://{deployment.bucket}/{key}"),
            ("final location", result.file_location),
            ("ledger status", record.status),
            ("attempts", record.attempts),
            ("rows read / written / rejected / duplicates",
             f"{record.rows_read:,} / {record.items_written:,} / {record.rows_rejected:,} / "
             f"{record.duplicate_rows:,}"),
            ("rejects", record.rejects_location),
            ("items in table (expected)", f"{in_table:,} ({expected:,})"),
            ("total time", f"{time.monotonic() - started:.1f} s"),
        ):
            table.add_row(name, str(value))
        out.print(table)
        ok = (record.status in ("SUCCEEDED", "SUCCEEDED_WITH_REJECTS")
              and in_table == expected and "/complete/" in f"/{result.file_location or ''}")
        if not ok:
            console.print("[red]the demo did not end as expected[/red]")
        return 0 if ok else 1
