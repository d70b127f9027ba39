"""The job: resolve the source and schema, read with Spark, partition by key hash, run
:func:`dynamo_ingest.pipeline.process_partition` in every task, and report.

``run`` is the one entry point for the Glue script, ``dynamo-ingest run`` and the local
orchestration. Nothing is collected to the driver except one small row per partition.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from dynamo_ingest.arguments import JobArguments
from dynamo_ingest.aws import AwsConfig
from dynamo_ingest.capacity import table_write_capacity
from dynamo_ingest.catalog import CsvSchema, get_catalog_schema
from dynamo_ingest.errors import DynamoIngestError
from dynamo_ingest.estimate import Prices
from dynamo_ingest.items import ItemBuilder
from dynamo_ingest.keys import check_key_arguments, describe_key_schema
from dynamo_ingest.local_engine import (
    LocalLoad,
    engine_fingerprint,
    load_file,
    resolve_engine,
    worker_count,
)
from dynamo_ingest.mapping import AttributeMapping, KeyHashPart
from dynamo_ingest.pipeline import (
    REJECTS_HEADER,
    PartitionResult,
    PartitionTask,
    default_partitions,
    rate_per_task,
)
from dynamo_ingest.read import (
    parse_header,
    partitioned_for_writing,
    read_head,
    read_records,
)
from dynamo_ingest.report import RowCounts, RunReport
from dynamo_ingest.runtime import Runtime
from dynamo_ingest.storage import ResolvedSource, Storage, default_rejects_path, resolve_source
from dynamo_ingest.writer import RetryPolicy

LOG = logging.getLogger("dynamo_ingest")
# One row per partition back to the driver: the partition, its RowCounts, and its outcome.
STATS_FIELDS = (
    ("partition", "int32"),
    *((name, "float64" if name == "wcu_consumed" else "int64")
      for name in RowCounts.__dataclass_fields__),
    ("exhausted", "bool_"), ("error", "string"), ("rejects_written", "int64"),
)
SPARK_TYPES = {"int32": "int", "int64": "long", "float64": "double", "bool_": "boolean",
               "string": "string"}
STATS_DDL = ", ".join(f"{name} {SPARK_TYPES[kind]}" for name, kind in STATS_FIELDS)

ProgressCallback = Callable[[int, int], None]


def resolve_write_rate(args: JobArguments, table: dict[str, Any]) -> tuple[float, str]:
    """``--write_rate`` as WCU/s for the whole job (all tasks together)."""
    if args.write_rate != "auto":
        return float(args.write_rate), "--write_rate"
    capacity, origin = table_write_capacity(table)
    return capacity * args.write_share, f"{args.write_share:g} × {capacity:g} WCU/s ({origin})"


def load_schema(args: JobArguments, aws: AwsConfig, source: ResolvedSource) -> CsvSchema:
    """The catalog table's schema with the header's spelling, or the local crawler's."""
    if args.catalog_database and args.catalog_table:
        schema = get_catalog_schema(aws.client("glue"), args.catalog_database, args.catalog_table)
        if args.delimiter or args.quote_char:
            schema = replace(schema, delimiter=args.delimiter or schema.delimiter,
                             quote_char=args.quote_char or schema.quote_char)
        staged = bool(source.local_copy) or not source.bucket
        head = read_head(source.spark_path, None if staged else aws.client("s3"),
                         "" if staged else source.bucket, source.key)
        header = parse_header(head, schema.delimiter, schema.quote_char, source.uri)
        return schema.with_header_names(header)
    from crawlers.local_crawler import infer_schema

    local = Path(source.local_copy or source.spark_path)
    if not local.exists():
        raise DynamoIngestError(
            f"{source.uri}: no catalog table named; pass --catalog_database/--catalog_table "
            "(the crawler's table) when the file is read from S3 by Glue")
    # A header with no data rows (an export with nothing new) loads nothing and succeeds.
    schema = infer_schema(local, delimiter=args.delimiter, quote_char=args.quote_char or '"',
                          require_rows=False)
    head = read_head(str(local), None, "", "")
    header = parse_header(head, schema.delimiter, schema.quote_char, source.uri)
    return schema.with_header_names(header)


def _task_function(task: PartitionTask) -> Callable[[Iterable[Any]], Iterable[Any]]:
    """The function every Spark task runs over its partition's Arrow batches."""

    def run_partition(batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from dynamo_ingest.partition_run import run_partition as run_one

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        result = run_one(task, partition, batches)
        yield pa.RecordBatch.from_pylist([_result_row(result)], schema=_stats_schema())

    return run_partition


def _execute(runtime: Runtime | None, source: ResolvedSource, schema: CsvSchema,
             key_parts: list[KeyHashPart], task: PartitionTask, workers: int) -> list[Any]:
    """Every partition's stats row: Spark's (no runtime: the in-process engine's)."""
    if runtime is None:
        load = LocalLoad(source.local_copy or source.spark_path, schema, tuple(key_parts),
                         workers)
        return [_result_row(result) for result in load_file(load, task)]
    records = read_records(runtime.spark, source.spark_path, schema)
    ordered = partitioned_for_writing(records, key_parts, task.partitions)
    return ordered.mapInArrow(_task_function(task), STATS_DDL).collect()


def _stats_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(name, getattr(pa, kind)()) for name, kind in STATS_FIELDS])


def _result_row(result: PartitionResult) -> dict[str, Any]:
    counts = result.counts
    return {"partition": result.partition,
            **{name: getattr(counts, name) for name in RowCounts.__dataclass_fields__},
            "exhausted": result.exhausted, "error": result.error,
            "rejects_written": result.rejects_written}


class _ProgressPoller:
    """Polls the ledger's checkpoints for rows written while Spark runs (driver thread)."""

    def __init__(self, read_written: Callable[[], int], total: int,
                 callback: ProgressCallback, interval_s: float = 0.5) -> None:
        self._read = read_written
        self._total = total
        self._callback = callback
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._callback(self._read(), self._total)
            except Exception:
                LOG.debug("progress poll failed", exc_info=True)

    def __enter__(self) -> _ProgressPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def run(args: JobArguments, runtime: Runtime | None = None, *,
        progress: ProgressCallback | None = None, job_run_id: str | None = None) -> RunReport:
    """Load ``args.source_path`` into ``args.target_table``; never raises for a failed load:
    the report's ``status`` says FAILED and ``error`` says why."""
    started = time.monotonic()
    aws = AwsConfig.from_environ()
    report = RunReport(status="FAILED", source_path=args.source_path,
                       target_table=args.target_table)
    run_id = job_run_id or f"local-{uuid.uuid4().hex[:12]}"
    ledger = None
    source = None
    try:
        engine = resolve_engine(args.engine)
        if engine != "spark":
            runtime = None  # the in-process engine starts no JVM (and reads a staged copy)
        elif runtime is None:
            from dynamo_ingest.runtime import local_runtime

            runtime = local_runtime()
        source = resolve_source(args.source_path, aws,
                                stage_s3=runtime is None or not runtime.is_glue,
                                expected_etag=args.source_etag)
        from dynamo_ingest.checkpoints import LedgerSession

        # Record the run as soon as the object is known, so a run that fails on the table,
        # the schema or the mapping still leaves its report (and reason) in the ledger.
        ledger = LedgerSession.open(aws, args.ledger_table, source, create=aws.is_emulated)
        report.attempt = ledger.job_started(run_id)
        dynamodb = aws.client("dynamodb")
        keys, table = describe_key_schema(dynamodb, args.target_table)
        check_key_arguments(keys, args.partition_key, args.sort_key, args.target_table)
        schema = load_schema(args, aws, source)
        mapping = AttributeMapping.from_arguments(args)
        # Fail on a mapping that does not fit the file before Spark starts.
        ItemBuilder(schema.columns, keys, args.empty_value, mapping)
        key_parts = mapping.key_hash_parts(schema.columns, keys)
        if args.restart:
            ledger.clear_checkpoints()
        parallelism = (worker_count() if runtime is None
                       else runtime.spark.sparkContext.defaultParallelism)
        partitions, unfinished = ledger.resume_plan(
            args.partitions or default_partitions(parallelism, source.size), run_id,
            engine_fingerprint(args.load_fingerprint(), engine))
        total_rate, rate_origin = resolve_write_rate(args, table)
        rejects_path = args.rejects_path or default_rejects_path(source)
        task = PartitionTask(
            columns=schema.columns, key_schema=keys, target_table=args.target_table,
            empty_value=args.empty_value, delimiter=schema.delimiter,
            quote_char=schema.quote_char, aws=aws,
            retry=RetryPolicy(max_retry_seconds=args.max_retry_seconds),
            # A resume splits the budget over the partitions still to write.
            rate_per_task=rate_per_task(total_rate, unfinished, parallelism),
            rejects_parts_prefix=rejects_path + ".parts",
            checkpoint_every=args.checkpoint_every,
            ledger_table=args.ledger_table,
            source_key=(source.bucket, source.key, source.etag), partitions=partitions,
            resume=not args.restart, mapping=None if mapping.is_identity else mapping,
            write_mode=args.write_mode)
        LOG.info("loading %s into %s with the %s engine: %d partitions, %.0f WCU/s (%s)",
                 source.uri, args.target_table, engine, partitions, total_rate, rate_origin)
        if progress is not None:
            estimate = max(1, source.size // max(1, _bytes_per_row(source)))
            with _ProgressPoller(ledger.items_written, estimate, progress):
                rows = _execute(runtime, source, schema, key_parts, task, parallelism)
        else:
            rows = _execute(runtime, source, schema, key_parts, task, parallelism)
        counts = RowCounts()
        errors = []
        rejected_parts = []
        for row in rows:
            counts.add(RowCounts(**{k: row[k] for k in RowCounts.__dataclass_fields__}))
            if row["exhausted"] or row["error"]:
                errors.append(f"partition {row['partition']}: {row['error']}")
            if row["rejects_written"]:
                rejected_parts.append(task.rejects_part(row["partition"]))
        storage = Storage(aws)
        if rejected_parts:
            header = _rejects_header(schema)
            storage.concat(header, sorted(rejected_parts), rejects_path)
            storage.delete(rejected_parts)
            report.rejects_path = rejects_path
        report.counts = counts
        # On-demand price of what was consumed (provisioned tables pay per hour instead).
        report.extra["write_cost_on_demand_usd"] = round(
            Prices().on_demand_usd(counts.wcu_consumed), 6)
        report.partitions = partitions
        report.extra["engine"] = engine
        report.write_rate_wcu_s = round(total_rate, 1)
        if errors:
            report.status = "FAILED"
            report.error = f"{len(errors)} partition(s) could not finish: " + "; ".join(errors[:3])
        elif counts.rows_rejected or rejected_parts:
            # (helper J) A resumed run re-emits the rejects of rows an earlier attempt finished
            # without counting them again: a non-empty rejects file means rows were rejected.
            report.status = "SUCCEEDED_WITH_REJECTS"
        else:
            report.status = "SUCCEEDED"
        if progress is not None:
            progress(counts.items_written + counts.rows_skipped_by_resume, counts.rows_read)
        if report.status != "FAILED":
            # (helper J) The file's counts over all attempts live in the done checkpoints:
            # report them before the checkpoints go.
            file_counts = ledger.file_counts(partitions)
            if file_counts is not None:
                report.extra["file_counts"] = file_counts
            # A finished load leaves no checkpoints: the next run of this object starts fresh.
            ledger.clear_checkpoints()
    except DynamoIngestError as err:
        report.status = "FAILED"
        report.error = str(err)
        report.retryable = err.retryable
    except Exception as err:
        # e.g. a task that cannot reach the ledger: report FAILED (checkpoints are kept, so
        # the retry resumes) instead of leaving the ledger STARTED with no counts.
        LOG.exception("the Spark job failed")
        report.status = "FAILED"
        report.error = f"the Spark job failed: {_first_line(err)}"
    if source is not None:
        source.discard_staged_copy()
    report.elapsed_s = time.monotonic() - started
    if ledger is not None:
        ledger.record_report(run_id, report.to_dict())
    if args.report_path:
        Storage(aws).put_bytes(report.to_json().encode("utf-8") + b"\n", args.report_path)
    return report


def _first_line(err: BaseException) -> str:
    """The useful line of an exception (Spark's carry a JVM stack trace)."""
    text = str(err).strip()
    for line in text.splitlines():
        if "Error" in line or "Exception" in line:
            return line.strip()[:500]
    return text.splitlines()[0][:500] if text else type(err).__name__


def _bytes_per_row(source: ResolvedSource) -> int:
    """Average bytes per row from the first MB (for the progress bar's total only)."""
    try:
        with open(source.local_copy or source.spark_path, "rb") as handle:
            sample = handle.read(1024 * 1024)
    except OSError:
        return 200
    lines = sample.count(b"\n")
    return max(1, len(sample) // max(1, lines))


def _rejects_header(schema: CsvSchema) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([*REJECTS_HEADER, *schema.names])
    return buffer.getvalue().encode("utf-8")
