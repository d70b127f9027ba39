"""``dynamo-ingest estimate SOURCE …``: rows, keys, item sizes, write units, time and cost of
loading a file, read with the job's parser and mapping (same ``--names`` as ``run``)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any

import typer
from dynamo_ingest.core.arguments import JobArguments, job_arguments_from_mapping
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError, TargetTableError
from dynamo_ingest.core.keys import (
    KeyAttribute,
    KeySchema,
    check_key_arguments,
    key_schema_from_description,
)
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.estimate import Estimate, GlueWorkers, Prices, estimate_source
from rich.console import Console
from rich.table import Table

from dynamo_ingest_cli.job_options import glue_values, job_options

# The job arguments need a table name; an offline estimate has none.
_NO_TABLE = "(no table)"
_DEFAULTS = Prices()


def _opt(name: str, help_text: str) -> Any:
    return typer.Option(f"--{name}", help=help_text)


def _key(value: str | None, option: str) -> KeyAttribute | None:
    """``NAME``, ``NAME:S`` or ``NAME:N`` → a key attribute (S when no type is given)."""
    if not value:
        return None
    name, _, kind = value.partition(":")
    kind = (kind or "S").upper()
    if not name or kind not in ("S", "N"):
        raise ArgumentError(f"--{option} expects NAME, NAME:S or NAME:N, found {value!r}")
    return KeyAttribute(name, kind)  # type: ignore[arg-type]


def describe_target(aws: AwsConfig, table: str) -> tuple[dict[str, Any] | None, str]:
    """DescribeTable's ``Table``, or None with why (the table is new, or not reachable)."""
    from botocore.exceptions import BotoCoreError, ClientError
    from dynamo_ingest.core.aws import EndpointUnreachableError

    client = aws.client("dynamodb", connect_timeout=3, read_timeout=10,
                        retries={"total_max_attempts": 2, "mode": "standard"})
    try:
        return dict(client.describe_table(TableName=table)["Table"]), "described"
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code == "ResourceNotFoundException":
            return None, f"table {table!r} does not exist yet"
        return None, f"table {table!r} could not be described ({code})"
    except (BotoCoreError, EndpointUnreachableError) as err:
        return None, f"table {table!r} could not be described ({type(err).__name__})"


def render(estimate: Estimate, console: Console) -> None:
    """The estimate as rich tables."""
    def table(title: str, rows: list[tuple[str, str]]) -> None:
        out = Table(title=title, show_header=False, title_justify="left")
        for name, value in rows:
            out.add_row(name, value)
        console.print(out)

    table(f"estimate: {estimate.source}", [
        ("rows", f"{estimate.rows:,}"), ("items written", f"{estimate.items:,}"),
        ("distinct keys", f"{estimate.distinct_keys:,}"),
        ("duplicate rows", f"{estimate.duplicate_rows:,}"),
        ("rejected rows", f"{estimate.rejected_rows:,}"),
        ("partition key values", f"{estimate.partition_keys:,}")])
    sizes = estimate.item_sizes
    if sizes is not None:
        table("item size (bytes, DynamoDB sizing)", [
            ("min / p50 / p90 / p99 / max",
             f"{sizes.min:,} / {sizes.p50:,} / {sizes.p90:,} / {sizes.p99:,} / {sizes.max:,}"),
            ("total", f"{sizes.total:,}")])
    table("write units", [
        ("table", f"{estimate.wcu_table:,}"),
        *((f"index {name}", f"{wcu:,}") for name, wcu in estimate.wcu_indexes.items()),
        ("total", f"{estimate.wcu_total:,}"),
        *((f"hot key {hot.partition_key[:40]!r}", f"{hot.wcu:,} WCU, {hot.items:,} items")
          for hot in estimate.hottest_keys),
        ("hottest key share", f"{estimate.hottest_key_share:.1%}")])
    collections = estimate.item_collections
    table("time", [
        ("table capacity", f"{estimate.capacity_wcu_s:,.0f} WCU/s ({estimate.capacity_origin})"),
        ("job write rate", f"{estimate.write_rate_wcu_s:,.0f} WCU/s"),
        ("minimum at table capacity", f"{estimate.load_s_at_capacity:,.1f} s"),
        ("minimum at 1,000 WCU/s per key", f"{estimate.load_s_at_key_limit:,.1f} s"),
        ("predicted", f"{estimate.predicted_load_s:,.1f} s"),
        *(() if collections is None else ((
            "largest item collection",
            f"{collections.largest_bytes:,} bytes of 10 GB "
            f"({'ok' if collections.within_limit else 'OVER THE LIMIT'})"),))])
    costs = estimate.costs
    table("cost (USD)", [
        ("on-demand writes", f"{costs.on_demand:,.4f}"),
        ("provisioned writes", f"{costs.provisioned:,.4f} "
                               f"({costs.provisioned_rate_wcu_s:,.0f} WCU/s, started hours)"),
        ("Glue job", f"{costs.glue:,.4f} ({costs.glue_dpus:g} DPU)"),
        *(() if costs.import_from_s3 is None else
          (("Import from S3 (new table)", f"{costs.import_from_s3:,.4f}"),))])
    if estimate.rejected_examples:
        table("rejected rows (first ones)",
              [(f"record {n}", reason) for n, reason in estimate.rejected_examples])
    for note in estimate.notes:
        console.print(f"note: {note}")


_Source = Annotated[str | None, typer.Argument(
    help="CSV to estimate: s3://bucket/key or a local path")]
_SourcePath = Annotated[str | None, _opt("source_path", "the CSV, as in run (instead of SOURCE)")]
_TargetTable = Annotated[
    str | None, _opt("target_table", "table to load; described when reachable")]
_PartitionKey = Annotated[
    str | None, _opt("partition_key", "NAME[:S|N]; needed when the table is not reachable")]
_SortKey = Annotated[str | None, _opt("sort_key", "NAME[:S|N] of the sort key, if any")]
_Workers = Annotated[int, _opt("workers", "Glue NumberOfWorkers")]
_WorkerType = Annotated[
    str, _opt("worker_type", "Glue WorkerType: G.025X, G.1X, G.2X, G.4X or G.8X")]
_PriceOnDemand = Annotated[
    float, _opt("price_on_demand_per_million_wru", "USD per million write request units")]
_PriceProvisioned = Annotated[
    float, _opt("price_provisioned_per_wcu_hour", "USD per provisioned WCU-hour")]
_PriceGluePerDpuHour = Annotated[float, _opt("price_glue_per_dpu_hour", "USD per Glue DPU-hour")]
_PriceImportPerGb = Annotated[
    float, _opt("price_import_per_gb", "USD per GB imported by Import from S3")]
_Json = Annotated[bool, typer.Option("--json", help="print the estimate as JSON")]


@job_options("estimate")
def estimate_command(
    source: _Source = None,
    source_path: _SourcePath = None,
    target_table: _TargetTable = None,
    partition_key: _PartitionKey = None,
    sort_key: _SortKey = None,
    *,
    workers: _Workers = 2,
    worker_type: _WorkerType = "G.1X",
    price_on_demand_per_million_wru: _PriceOnDemand = _DEFAULTS.on_demand_per_million_wru,
    price_provisioned_per_wcu_hour: _PriceProvisioned = _DEFAULTS.provisioned_per_wcu_hour,
    price_glue_per_dpu_hour: _PriceGluePerDpuHour = _DEFAULTS.glue_per_dpu_hour,
    price_import_per_gb: _PriceImportPerGb = _DEFAULTS.import_per_gb,
    json_output: _Json = False,
    **job_values: str | bool | None,
) -> None:
    """Estimate rows, keys, item sizes, WCU, load time and cost before loading a file."""
    from dynamo_ingest_cli.terminal import fit_to_output

    console = Console(stderr=True)
    fit_to_output(console)
    try:
        path = source or source_path
        if not path:
            raise ArgumentError("expected the CSV as SOURCE or --source_path")
        partition = _key(partition_key, "partition_key")
        sort = _key(sort_key, "sort_key")
        values = glue_values(job_values)
        values.update(source_path=path, target_table=target_table or _NO_TABLE)
        values.update({k: a.name for k, a in (("partition_key", partition), ("sort_key", sort))
                       if a is not None})
        args = job_arguments_from_mapping(values)
        prices = Prices(price_on_demand_per_million_wru, price_provisioned_per_wcu_hour,
                        price_glue_per_dpu_hour, price_import_per_gb)
        result = run_estimate(args, partition, sort, prices, GlueWorkers(workers, worker_type))
    except ArgumentError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from err
    except DynamoIngestError as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from err
    if json_output:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        screen = Console()
        fit_to_output(screen)
        render(result, screen)


def run_estimate(args: JobArguments, partition: KeyAttribute | None, sort: KeyAttribute | None,
                 prices: Prices, workers: GlueWorkers) -> Estimate:
    """Resolve the table, key schema, source and schema as the job does, then estimate."""
    from dynamo_ingest.control.storage import resolve_source
    from dynamo_ingest.load import load_schema, resolve_write_rate

    aws = AwsConfig.from_environ()
    description, why = (describe_target(aws, args.target_table)
                        if args.target_table != _NO_TABLE else (None, "no --target_table given"))
    if description is not None:
        keys = key_schema_from_description(description)
        check_key_arguments(keys, args.partition_key, args.sort_key, args.target_table)
    elif partition is not None:
        keys = KeySchema(partition, sort)
    else:
        raise TargetTableError(
            f"{why}, so its key schema is unknown: pass --partition_key NAME[:S|N] (and "
            "--sort_key) to estimate for a new table")
    source = resolve_source(args.source_path, aws, stage_s3=True)
    try:
        schema, text = load_schema(args, aws, source)
        rate, _ = resolve_write_rate(args, description or {})
        estimate = estimate_source(
            source.local_copy or source.spark_path, schema=schema, key_schema=keys,
            mapping=AttributeMapping.from_arguments(args), empty_value=args.empty_value,
            table_description=description, prices=prices, write_rate_wcu_s=rate,
            workers=workers, write_mode=args.write_mode, encoding=text.encoding,
            limits=text.limits, name=args.source_path)
    finally:
        source.discard_staged_copy()
    if description is None:
        estimate.notes.insert(0, why)
    return replace(estimate, source=args.source_path)
