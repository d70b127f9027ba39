"""Where a Python worker's CPU goes, without Spark: the job's per-partition code run in this
process over Arrow batches shaped like the ones ``mapInArrow`` hands a task.

Each stage adds one step to the previous one, so the differences are the steps' costs:
``rows`` (Arrow → Python rows), ``build`` (+ UTF-8 check and item building), ``pipeline``
(the whole ``process_partition`` with a transport that answers in memory), then the same with
each real transport against the null-sink endpoint.
``python -m benchmarks.worker --csv F [--profile]`` prints the table (or a cProfile).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import os
import pstats
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from dynamo_ingest.core.arguments import EmptyPolicy
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.engine.items import ItemBuilder, Rejection, decode_utf8
from dynamo_ingest.engine.layout import CORRUPT_COLUMN, KEY_HASH, RECORD_NO, value_column
from dynamo_ingest.engine.pipeline import PartitionTask, arrow_rows, process_partition
from dynamo_ingest.engine.transport import BotocoreTransport, DynamoTransport, LeanHttpTransport
from dynamo_ingest.engine.writer import BatchWriter, RetryPolicy

from dynamo_ingest_cli.datagen import ORDERS_SCHEMA

ARROW_BATCH_ROWS = 10_000  # spark.sql.execution.arrow.maxRecordsPerBatch's default
TABLE = "bench"
KEY = KeySchema(KeyAttribute("orderId", "S"))
STAGES = ("rows", "build", "pipeline", "lean_http", "botocore")


class InMemoryTransport:
    """Acknowledges every item at once (what a null sink answers), with no I/O."""

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        """Every item written, capacity reported as one WCU each."""
        consumed = [{"TableName": table, "CapacityUnits": float(len(entries))}
                    for table, entries in request["RequestItems"].items()]
        return {"UnprocessedItems": {}, "ConsumedCapacity": consumed}


def arrow_batches(path: Path, rows: int | None = None) -> list[Any]:
    """The file as a sorted partition: ``c0…cN`` strings read as ISO-8859-1, no corrupt
    records, record numbers, rows ordered by a 64-bit key hash (like the job's sort)."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = [name for name, _ in ORDERS_SCHEMA]
    table = pacsv.read_csv(
        path, read_options=pacsv.ReadOptions(encoding="latin1", use_threads=False),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                             strings_can_be_null=False))
    if rows is not None:
        table = table.slice(0, rows)
    table = table.rename_columns([value_column(i) for i in range(len(names))])
    keys = table.column(value_column(names.index(KEY.partition.name))).to_pylist()
    hashes = [int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big",
                             signed=True) for k in keys]
    table = (table.append_column(CORRUPT_COLUMN, pa.nulls(len(table), pa.string()))
             .append_column(RECORD_NO, pa.array(range(1, len(table) + 1), pa.int64()))
             .append_column(KEY_HASH, pa.array(hashes, pa.int64()))
             .sort_by([(KEY_HASH, "ascending"), (RECORD_NO, "ascending")]))
    return list(table.to_batches(max_chunksize=ARROW_BATCH_ROWS))


def partition_task(table: str = TABLE, empty_value: EmptyPolicy = "omit") -> PartitionTask:
    """The task the job would ship for the orders file (no ledger, unlimited rate)."""
    return PartitionTask(
        columns=tuple(Column(name, kind) for name, kind in ORDERS_SCHEMA), key_schema=KEY,
        target_table=table, empty_value=empty_value, delimiter=",", quote_char='"',
        aws=AwsConfig.from_environ(), retry=RetryPolicy(max_retry_seconds=60),
        rate_per_task=None, rejects_parts_prefix="/tmp/dynamo-ingest-bench-rejects")


def _stage_rows(batches: Iterable[Any], task: PartitionTask) -> int:
    count = 0
    for _ in arrow_rows(batches, len(task.columns)):
        count += 1
    return count


def _stage_build(batches: Iterable[Any], task: PartitionTask) -> int:
    builder = ItemBuilder(task.columns, task.key_schema, task.empty_value)
    count = 0
    for _hash, _record_no, raw, _corrupt in arrow_rows(batches, len(task.columns)):
        decoded = decode_utf8(raw)
        if isinstance(decoded, Rejection) or isinstance(builder.build(decoded), Rejection):
            raise AssertionError(f"the benchmark file has no bad rows, yet {raw} was rejected")
        count += 1
    return count


def _stage_pipeline(transport: DynamoTransport) -> Callable[[Iterable[Any], PartitionTask], int]:
    def run(batches: Iterable[Any], task: PartitionTask) -> int:
        def writer_factory(on_ack: Callable[[int], None]) -> BatchWriter:
            return BatchWriter(transport, task.target_table, policy=task.retry,
                               on_acknowledged=on_ack)

        def no_rejects(path: Path, target: str) -> None:
            raise AssertionError(f"the benchmark file has no bad rows, yet {path} was written")

        result = process_partition(0, batches, task, writer_factory, None, no_rejects)
        if result.error or result.counts.items_written != result.counts.rows_read:
            raise AssertionError(f"the {type(transport).__name__} stage did not write every "
                                 f"row: {result}")
        return result.counts.items_written
    return run


def stage_functions(with_http: bool) -> dict[str, Callable[[Iterable[Any], PartitionTask], int]]:
    """The stages to time; the HTTP ones need ``AWS_ENDPOINT_URL_DYNAMODB`` (the null sink)."""
    stages = {"rows": _stage_rows, "build": _stage_build,
              "pipeline": _stage_pipeline(InMemoryTransport())}
    if with_http:
        aws = AwsConfig.from_environ()
        args = (aws.endpoints.get("dynamodb"), aws.region, aws.credentials)
        stages["lean_http"] = _stage_pipeline(LeanHttpTransport.from_config(*args))
        stages["botocore"] = _stage_pipeline(BotocoreTransport.from_config(*args))
    return stages


def worker_costs(path: Path, rows: int | None = None, *, table: str = TABLE,
                 with_http: bool = True, rounds: int = 3) -> dict[str, float]:
    """CPU µs per item of each stage (user + sys of this process), the best of ``rounds``
    interleaved rounds: the machine is shared, and contention only ever adds time."""
    batches = arrow_batches(path, rows)
    task = partition_task(table)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, stage in stage_functions(with_http).items():
            started = time.process_time()
            count = stage(batches, task)
            micros = (time.process_time() - started) / max(1, count) * 1e6
            best[name] = min(micros, best.get(name, micros))
    return best


def profile_stage(path: Path, stage: str, rows: int | None, table: str = TABLE,
                  top: int = 30) -> str:
    """A cProfile of one stage (CPU clock), sorted by own time."""
    batches = arrow_batches(path, rows)
    task = partition_task(table)
    function = stage_functions(stage in ("lean_http", "botocore"))[stage]
    profiler = cProfile.Profile(time.process_time)  # CPU, not waiting on the endpoint
    profiler.runcall(function, batches, task)
    stream = _Lines()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)  # type: ignore[arg-type]
    return "".join(stream.lines)


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.append(text)
        return len(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Print µs per item per stage, or a profile of one stage."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.worker")
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--profile", choices=STAGES, help="print a cProfile of this stage")
    parser.add_argument("--table", default=TABLE, help="target table (must exist)")
    parser.add_argument("--json", action="store_true", help="print the stages as JSON")
    parser.add_argument("--local", action="store_true",
                        help="start moto and the null sink here (else use the AWS variables)")
    args = parser.parse_args(argv)
    if args.local:
        from benchmarks.endpoints import LocalEndpoints
        from benchmarks.run import ensure_tables

        with LocalEndpoints(Path(args.csv).parent / "logs") as endpoints:
            endpoints.set_plan(null_sink=True)
            os.environ.update(endpoints.environment())
            ensure_tables(endpoints, (args.table,))
            return _report(args)
    return _report(args)


def _report(args: argparse.Namespace) -> int:
    with_http = bool(os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"))
    if args.profile:
        sys.stdout.write(profile_stage(args.csv, args.profile, args.rows, args.table))
        return 0
    costs = worker_costs(args.csv, args.rows, table=args.table, with_http=with_http)
    if args.json:
        sys.stdout.write(json.dumps({k: round(v, 2) for k, v in costs.items()}) + "\n")
        return 0
    for name, micros in costs.items():
        sys.stdout.write(f"{name:>10}: {micros:7.1f} µs/item\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
