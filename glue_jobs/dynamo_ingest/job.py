"""The job: resolve the source and schema, read with Spark, partition by key hash, run
:func:`dynamo_ingest.engine.pipeline.process_partition` in every task, and report.

``run`` is the one entry point for the Glue script, ``dynamo-ingest run`` and the local
orchestration. Nothing is collected to the driver except one small row per partition.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynamo_ingest.control.checkpoints import (
    LedgerSession,
    ResumePlan,
    counts_since,
    table_instance,
)
from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.locations import BucketFolders, default_rejects_path
from dynamo_ingest.control.storage import ResolvedSource, Storage, is_s3, resolve_source, split_s3
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.capacity import table_write_capacity
from dynamo_ingest.core.catalog import CsvSchema, get_catalog_schema
from dynamo_ingest.core.engine_choice import EngineChoice, choose_engine
from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError
from dynamo_ingest.core.formats import value_encoding
from dynamo_ingest.core.keys import KeySchema, check_key_arguments, describe_key_schema
from dynamo_ingest.core.mapping import AttributeMapping, KeyHashPart
from dynamo_ingest.core.report import RowCounts, RunReport
from dynamo_ingest.engine.compression import Codec
from dynamo_ingest.engine.items import ItemBuilder
from dynamo_ingest.engine.layout import (
    TRAILING_DELIMITER_NOTE,
    read_header,
    read_source_head,
    refuse_wrong_delimiter,
)
from dynamo_ingest.engine.local import (
    PARTITION_ROWS,
    LocalLoad,
    engine_fingerprint,
    load_file,
    worker_count,
)
from dynamo_ingest.engine.pipeline import (
    PartitionResult,
    PartitionTask,
    auto_checkpoint_every,
    default_partitions,
    rate_per_task,
)
from dynamo_ingest.engine.rejects import merge_parts, rejects_header
from dynamo_ingest.engine.sizing import write_units
from dynamo_ingest.engine.source import (
    Expansion,
    SourceLimits,
    SourceOpener,
    measure_expansion,
    open_source,
    source_format,
)
from dynamo_ingest.engine.writer import RetryPolicy
from dynamo_ingest.estimate import Prices
from dynamo_ingest.spark.read import (
    is_unreadable_path,
    partitioned_for_writing,
    read_records,
    reading,
    spark_reads_itself,
    split_in_one_task,
)
from dynamo_ingest.spark.runtime import Runtime

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

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


@dataclass(frozen=True)
class _Text:
    """How the source's text is read: where Python reads it, its compression, encoding and
    bounds (see :mod:`dynamo_ingest.engine.source`)."""

    path: str  # a local file (the file itself or the staged copy) or the s3:// object
    s3: Any | None  # the client that reads an s3:// path
    name: str  # the file as messages call it: the user's path or URI
    codec: Codec | None
    encoding: str
    limits: SourceLimits

    def head(self) -> bytes:
        """The first bytes of the text (decompressed, UTF-16 as UTF-8)."""
        return read_source_head(self.path, self.s3, name=self.name, encoding=self.encoding,
                                limits=self.limits)


def source_text(args: JobArguments, aws: AwsConfig, source: ResolvedSource,
                catalog_encoding: str | None = None) -> _Text:
    """The source's compression and encoding (the bytes decide, the name does not)."""
    if source.local_copy or not source.bucket:
        path, s3 = source.local_copy or source.spark_path, None
    else:
        path, s3 = source.uri, aws.client("s3")
    requested = args.encoding or catalog_encoding
    found = source_format(path, s3=s3, encoding=requested, name=source.uri)
    limits = SourceLimits(args.max_expansion, args.max_uncompressed_bytes)
    return _Text(path, s3, source.uri, found.codec, found.encoding, limits)


def load_schema(args: JobArguments, aws: AwsConfig, source: ResolvedSource
                ) -> tuple[CsvSchema, _Text]:
    """The catalog table's schema with the header's spelling, or the local crawler's; and
    how the text is read."""
    if args.catalog_database and args.catalog_table:
        schema = get_catalog_schema(aws.client("glue"), args.catalog_database, args.catalog_table)
        if args.delimiter or args.quote_char:
            schema = replace(schema, delimiter=args.delimiter or schema.delimiter,
                             quote_char=args.quote_char or schema.quote_char)
        text = source_text(args, aws, source, schema.encoding)
        head = text.head()
        header = read_header(head, schema.delimiter, schema.quote_char, source.uri,
                             value_encoding(text.encoding))
        # The header's first line, for the candidates it holds when the delimiter is wrong.
        first_line = head.split(b"\n", 1)[0].decode("utf-8-sig", "replace")
        refuse_wrong_delimiter(source.uri, header.names, first_line, schema.delimiter,
                               schema.quote_char, " (it overrides the catalog table's "
                               "delimiter), or re-run the crawler")
        if header.trailing_delimiter:
            LOG.info("%s: %s", source.uri, TRAILING_DELIMITER_NOTE)
        return replace(schema.with_header_names(header.names),
                       trailing_delimiter=header.trailing_delimiter), text
    from crawlers.local_crawler import infer_schema

    local = Path(source.local_copy or source.spark_path)
    if not local.exists():
        raise DynamoIngestError(
            f"{source.uri}: no catalog table named; pass --catalog_database/--catalog_table "
            "(the crawler's table) when the file is read from S3 by Glue")
    text = source_text(args, aws, source)
    # A header with no data rows (an export with nothing new) loads nothing and succeeds.
    schema = infer_schema(local, delimiter=args.delimiter, quote_char=args.quote_char or '"',
                          require_rows=False, encoding=text.encoding, name=source.uri,
                          limits=text.limits)
    header = read_header(text.head(), schema.delimiter, schema.quote_char, source.uri,
                         value_encoding(text.encoding))
    return replace(schema.with_header_names(header.names),
                   trailing_delimiter=header.trailing_delimiter), text


def _task_function(task: PartitionTask) -> Callable[[Iterable[Any]], Iterable[Any]]:
    """The function every Spark task runs over its partition's Arrow batches."""

    def run_partition(batches: Iterable[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from dynamo_ingest.engine.partition_run import run_partition as run_one

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        result = run_one(task, partition, batches)
        yield pa.RecordBatch.from_pylist([_result_row(result)], schema=_stats_schema())

    return run_partition


def _execute(spark: SparkSession | None, source: ResolvedSource, plan: _Plan,
             stop_flag: str | None = None) -> list[Any]:
    """Every partition's stats row: Spark's (no Spark: the in-process engine's)."""
    text = plan.text
    opener = SourceOpener(text.path, text.name, text.encoding, text.limits,
                          plan.task.aws if text.s3 is not None else None)
    if spark is None:
        load = LocalLoad(text.path, plan.schema, tuple(plan.key_parts), plan.workers,
                         stop_flag=stop_flag, text_bytes=plan.text_bytes)
        return [_result_row(result)
                for result in load_file(load, plan.task, lambda _: opener())]
    if spark_reads_itself(source.spark_path, text.codec):
        records = read_records(spark, source.spark_path, plan.schema, source.uri,
                               text.encoding)
    else:
        records = split_in_one_task(spark, opener, plan.schema)
    ordered = partitioned_for_writing(records, plan.key_parts, plan.task.partitions)
    with reading(source.uri, plan.schema.has_header):
        return ordered.mapInArrow(_task_function(plan.task), STATS_DDL).collect()


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


@dataclass
class _Load:
    """What a run has established so far (each part set by the step that learns it)."""

    run_id: str
    finishes_itself: bool
    ledger: LedgerSession | None = None
    source: ResolvedSource | None = None
    plan: ResumePlan | None = None
    own_spark: SparkSession | None = None  # the session this run started (and may stop)
    engine: str = "spark"
    stop_flag: str | None = None  # the in-process engine's stop request (a file its workers see)
    keys: KeySchema | None = None  # the target table's, from DescribeTable
    table: dict[str, Any] = field(default_factory=dict)


def run(args: JobArguments, runtime: Runtime | None = None, *,
        progress: ProgressCallback | None = None, job_run_id: str | None = None,
        interrupt: Interrupt | None = None) -> RunReport:
    """Load ``args.source_path`` into ``args.target_table``; never raises for a failed load:
    the report's ``status`` says FAILED and ``error`` says why.

    A run Glue started (``job_run_id``) is finished in the ledger by the callback when Glue
    reports its end; any other run (``dynamo-ingest run``, a local script) finishes its own
    record the same way. ``interrupt`` (SIGINT/SIGTERM) stops the run: it ends FAILED with the
    counts its checkpoints hold, and the next run resumes.
    """
    started = time.monotonic()
    aws = AwsConfig.from_environ()
    report = RunReport(status="FAILED", source_path=args.source_path,
                       target_table=args.target_table)
    load = _Load(run_id=job_run_id or f"local-{uuid.uuid4().hex[:12]}",
                 finishes_itself=job_run_id is None)
    interrupt = interrupt or Interrupt()
    try:
        _load(args, runtime, aws, load, report, progress, interrupt)
    except Exception as err:
        report.status = "FAILED"
        if interrupt.requested:
            # Whatever the cancelled Spark job raised, the cause is the request.
            _stop_own_spark(load)
            _report_interrupted(report, load, interrupt)
        elif isinstance(err, DynamoIngestError):
            report.error = str(err)
            report.retryable = err.retryable
        else:
            # e.g. a task that cannot reach the ledger: report FAILED (checkpoints are kept,
            # so the retry resumes) instead of leaving the ledger STARTED with no counts.
            LOG.exception("the Spark job failed")
            report.error = f"the Spark job failed: {_first_line(err)}"
            # A path Hadoop cannot read fails every run alike.
            report.retryable = not is_unreadable_path(err)
    interrupt.disarm()
    if load.stop_flag is not None:
        Path(load.stop_flag).unlink(missing_ok=True)
    if load.source is not None:
        load.source.discard_staged_copy(Storage(aws))
    report.elapsed_s = time.monotonic() - started
    if load.ledger is not None:
        load.ledger.record_report(load.run_id, report.to_dict(), finish=load.finishes_itself)
    if args.report_path:
        Storage(aws).put_bytes(report.to_json().encode("utf-8") + b"\n", args.report_path)
    return report


@dataclass(frozen=True)
class _Plan:
    """What the Spark job will do: the task every partition runs and where results go."""

    task: PartitionTask
    schema: CsvSchema
    key_parts: list[KeyHashPart]
    rejects_path: str
    predicted_rows: int
    total_rate: float
    workers: int  # tasks that run at once
    text: _Text
    text_bytes: int  # the source's text size (measured or extrapolated)


def _load(args: JobArguments, runtime: Runtime | None, aws: AwsConfig, load: _Load,
          report: RunReport, progress: ProgressCallback | None, interrupt: Interrupt) -> None:
    """Start → plan → execute on the chosen engine → sum up the partitions into ``report``."""
    spark, source, ledger = _start(args, runtime, aws, load, report, interrupt)
    plan = _plan(args, aws, spark, source, ledger, load, report)
    interrupt.check()
    if progress is not None:
        with _ProgressPoller(ledger.items_written, plan.predicted_rows, progress):
            rows = _execute(spark, source, plan, load.stop_flag)
    else:
        rows = _execute(spark, source, plan, load.stop_flag)
    interrupt.disarm()
    # A stopped in-process load ends its partitions early and cleanly: not a finished file.
    interrupt.check()
    _finish(rows, plan, aws, ledger, report, progress)


def _start(args: JobArguments, runtime: Runtime | None, aws: AwsConfig, load: _Load,
           report: RunReport, interrupt: Interrupt) -> tuple[SparkSession | None, ResolvedSource,
                                                              LedgerSession]:
    """The source resolved, the run recorded and its lease taken, the engine chosen, and Spark
    up unless the in-process engine loads the file (a stop request now cancels Spark's jobs)."""
    # Spark in Glue reads s3:// itself; locally, and for the in-process engine, it is staged.
    stage_s3 = runtime is None or not runtime.is_glue
    source = load.source = resolve_source(args.source_path, aws, stage_s3=stage_s3,
                                          expected_etag=args.source_etag,
                                          copy_folder=_spark_copy_folder(args))
    # Record the run as soon as the object is known, so a run that fails on the table, the
    # schema or the mapping still leaves its report (and reason) in the ledger.
    ledger = LedgerSession.open(aws, args.ledger_table, source, create=aws.is_emulated)
    report.attempt = ledger.job_started(load.run_id, args.to_glue_arguments())
    load.ledger = ledger
    load.keys, load.table = describe_key_schema(aws.client("dynamodb"), args.target_table)
    choice = _choose_engine(args, runtime, source, load.table)
    load.engine = report.extra["engine"] = choice.engine
    report.extra["engine_reason"] = choice.reason
    LOG.info("engine %s", choice.reason)
    if load.engine != "spark":
        load.stop_flag = _stop_flag_path(load.run_id)
        interrupt.arm(Path(load.stop_flag).touch)
        return None, source, ledger
    if runtime is None:
        from dynamo_ingest.spark.runtime import local_runtime

        runtime = local_runtime()
        load.own_spark = runtime.spark
    interrupt.arm(runtime.spark.sparkContext.cancelAllJobs)
    return runtime.spark, source, ledger


def _choose_engine(args: JobArguments, runtime: Runtime | None, source: ResolvedSource,
                   table: dict[str, Any]) -> EngineChoice:
    """``--engine`` as given, or for ``auto`` the small-file model at the table's write rate."""
    if args.engine != "auto":
        return EngineChoice(args.engine, 0.0, f"{args.engine}: --engine {args.engine}")
    if runtime is not None:
        # A Glue job (or a caller holding a session) started Spark before the job could
        # choose: its start-up is paid. Small files reach the loader Lambda instead.
        return EngineChoice("spark", 0.0, "spark: --engine auto with Spark already running "
                                          "(a Glue job run)")
    bytes_per_row = _bytes_per_row(source)
    return choose_engine(source.size, resolve_write_rate(args, table)[0],
                         bytes_per_row=bytes_per_row, wcu_per_row=write_units(bytes_per_row),
                         workers=worker_count())


def _plan(args: JobArguments, aws: AwsConfig, spark: SparkSession | None,
          source: ResolvedSource,
          ledger: LedgerSession, load: _Load, report: RunReport) -> _Plan:
    """Check the table, schema and mapping before Spark reads a row; decide the partitions
    (a resume reuses the earlier run's), the write rate and the checkpoint interval."""
    keys, table = load.keys, load.table
    assert keys is not None, "_start describes the table"
    check_key_arguments(keys, args.partition_key, args.sort_key, args.target_table)
    schema, text = load_schema(args, aws, source)
    mapping = AttributeMapping.from_arguments(args)
    # Fail on a mapping that does not fit the file before Spark starts.
    ItemBuilder(schema.columns, keys, args.empty_value, mapping)
    if args.restart:
        ledger.clear_checkpoints()
    parallelism = worker_count() if spark is None else spark.sparkContext.defaultParallelism
    predicted_rows = max(1, source.size // max(1, _bytes_per_row(source)))
    # The in-process engine sorts a partition of up to PARTITION_ROWS rows in memory.
    partitions = args.partitions or default_partitions(
        parallelism, source.size, predicted_rows, None if spark else PARTITION_ROWS)
    # Each engine resumes only its own checkpoints (see local_engine.engine_fingerprint).
    # Sizes are the text's: a compressed file's is measured on a prefix (a bomb fails here).
    expansion = measure_expansion(text.path, s3=text.s3, limits=text.limits, name=text.name)
    _report_text(report, text, expansion)
    resume = load.plan = ledger.resume_plan(
        partitions, load.run_id, engine_fingerprint(args.load_fingerprint(), load.engine),
        table_instance(table))
    if resume.discarded:
        report.extra["checkpoints_discarded"] = resume.discarded
    total_rate, rate_origin = resolve_write_rate(args, table)
    rejects_path = args.rejects_path or default_rejects_path(
        source.bucket, source.key, _bucket_folders(args))
    checkpoint_every = (auto_checkpoint_every(predicted_rows, resume.partitions, parallelism)
                        if args.checkpoint_every == "auto" else int(args.checkpoint_every))
    task = PartitionTask(
        columns=schema.columns, key_schema=keys, target_table=args.target_table,
        empty_value=args.empty_value, delimiter=schema.delimiter,
        quote_char=schema.quote_char, aws=aws,
        retry=RetryPolicy(max_retry_seconds=args.max_retry_seconds),
        # A resume splits the budget over the partitions still to write.
        rate_per_task=rate_per_task(total_rate, resume.unfinished, parallelism),
        rejects_parts_prefix=rejects_path + ".parts",
        checkpoint_every=checkpoint_every,
        ledger_table=args.ledger_table,
        source_key=(source.bucket, source.key, source.etag), partitions=resume.partitions,
        resume=not args.restart, mapping=None if mapping.is_identity else mapping,
        write_mode=args.write_mode, trailing_delimiter=schema.trailing_delimiter,
        value_encoding=value_encoding(text.encoding))
    LOG.info("loading %s into %s with the %s engine: %d partitions, %.0f WCU/s (%s), a "
             "checkpoint every %d batches", source.uri, args.target_table, load.engine,
             resume.partitions, total_rate, rate_origin, checkpoint_every)
    return _Plan(task, schema, mapping.key_hash_parts(schema.columns, keys), rejects_path,
                 predicted_rows, total_rate, parallelism, text, expansion.text_bytes)


def _report_text(report: RunReport, text: _Text, expansion: Expansion) -> None:
    """What the report says about the source's form: compression, encoding, text size."""
    if text.codec is not None:
        report.extra["compression"] = text.codec.name
        report.extra["source_text_bytes"] = expansion.text_bytes
        if expansion.estimated:
            report.extra["source_text_bytes_estimated"] = (
                "extrapolated from the expansion of the first MBs")
    if text.encoding != "utf-8":
        report.extra["encoding"] = text.encoding


def _finish(rows: list[Any], plan: _Plan, aws: AwsConfig, ledger: LedgerSession,
            report: RunReport, progress: ProgressCallback | None) -> None:
    """The report from the partitions' rows; a finished load's file counts, and its
    checkpoints cleared."""
    _sum_up(rows, plan.task, plan.schema, aws, plan.rejects_path, report)
    report.partitions = plan.task.partitions
    report.write_rate_wcu_s = round(plan.total_rate, 1)
    if progress is not None:
        counts = report.counts
        progress(counts.items_written + counts.rows_skipped_by_resume, counts.rows_read)
    if report.status != "FAILED":
        # The file's counts over all attempts live in the done checkpoints: report them
        # before the checkpoints go.
        file_counts = ledger.file_counts(plan.task.partitions)
        if file_counts is not None:
            report.extra["file_counts"] = file_counts
        # A finished load leaves no checkpoints: the next run of this object starts fresh.
        ledger.clear_checkpoints()


def _sum_up(rows: list[Any], task: PartitionTask, schema: CsvSchema, aws: AwsConfig,
            rejects_path: str, report: RunReport) -> None:
    """The partitions' rows → the report's counts, status and one rejects file."""
    counts = RowCounts()
    errors = []
    rejected_parts = []
    for row in rows:
        counts.add(RowCounts(**{k: row[k] for k in RowCounts.__dataclass_fields__}))
        if row["exhausted"] or row["error"]:
            errors.append(f"partition {row['partition']}: {row['error']}")
        if row["rejects_written"]:
            rejected_parts.append(task.rejects_part(row["partition"]))
    report.rejects_path = _write_rejects(Storage(aws), task, schema, rejected_parts,
                                         rejects_path)
    report.counts = counts
    # On-demand price of what was consumed (provisioned tables pay per hour instead). An
    # emulator's ConsumedCapacity is not DynamoDB's (moto reports one unit per batch), so
    # there the price is that of the units the items' sizes cost.
    emulated = "dynamodb" in aws.endpoints
    report.extra["write_cost_on_demand_usd"] = round(Prices().on_demand_usd(
        counts.wcu_estimated if emulated else counts.wcu_consumed), 6)
    report.extra["write_cost_basis"] = "wcu_estimated" if emulated else "wcu_consumed"
    if errors:
        report.status = "FAILED"
        report.error = f"{len(errors)} partition(s) could not finish: " + "; ".join(errors[:3])
    elif counts.rows_rejected or rejected_parts:
        # A resumed run re-emits the rejects of rows an earlier attempt finished without
        # counting them again: a non-empty rejects file means rows were rejected.
        report.status = "SUCCEEDED_WITH_REJECTS"
    else:
        report.status = "SUCCEEDED"


def _stop_own_spark(load: _Load) -> None:
    """Stop the Spark session this run started, so that the Python workers of cancelled tasks
    (which hold their rows and keep writing until their process ends) stop before the
    checkpoints are read and the process exits."""
    if load.own_spark is None:
        return
    try:
        load.own_spark.stop()
    except Exception as err:  # e.g. the JVM got the signal too and is already gone
        LOG.debug("stopping Spark after the interrupt failed: %s", err)


def _report_interrupted(report: RunReport, load: _Load, interrupt: Interrupt) -> None:
    """An interrupted run's report: one line of error and this run's counts as far as its
    partitions' checkpoints hold them (the rows after them are written again on resume)."""
    report.error = interrupt.reason
    report.retryable = True
    if load.ledger is None or load.plan is None:
        return
    report.partitions = load.plan.partitions
    try:
        now = load.ledger.progress(load.plan.partitions)
    except DynamoIngestError as err:
        LOG.warning("the checkpoints of the interrupted run could not be read: %s", err)
        return
    for partition, checkpoint in now.items():
        report.counts.add(counts_since(load.plan.prior.get(partition), checkpoint))


def _stop_flag_path(run_id: str) -> str:
    """Where a stop request of the in-process engine's run ``run_id`` appears (not yet)."""
    return str(Path(tempfile.gettempdir()) / f"dynamo-ingest-stop-{run_id}")


def _first_line(err: BaseException) -> str:
    """The useful line of an exception (Spark's carry a JVM stack trace)."""
    text = str(err).strip()
    for line in text.splitlines():
        if "Error" in line or "Exception" in line:
            return line.strip()[:500]
    return text.splitlines()[0][:500] if text else type(err).__name__


def _bytes_per_row(text: _Text) -> int:
    """Average bytes per row of the text from its first MB (progress and checkpoints)."""
    try:
        with open_source(text.path, s3=text.s3, limits=text.limits, encoding=text.encoding,
                         name=text.name) as handle:
            sample = handle.read(1024 * 1024)
    except (OSError, DynamoIngestError):
        return 200
    lines = sample.count(b"\n")
    return max(1, len(sample) // max(1, lines))


def _bucket_folders(args: JobArguments) -> BucketFolders:
    """The bucket's folders as the job's arguments give them (Terraform passes its own)."""
    defaults = BucketFolders()
    folders = replace(defaults, incoming=args.incoming_prefix or defaults.incoming,
                      error=args.error_prefix or defaults.error)
    problem = folders.overlap({"incoming": "--incoming_prefix", "error": "--error_prefix"})
    if problem:
        raise ArgumentError(problem)
    return folders


def _spark_copy_folder(args: JobArguments) -> str | None:
    """Where Spark in Glue reads a copy of an ``s3://`` object whose name Hadoop cannot read:
    beside the object's default rejects file, a place the job may write and read."""
    if not is_s3(args.source_path):
        return None
    bucket, key = split_s3(args.source_path)
    return default_rejects_path(bucket, key, _bucket_folders(args)) + ".source/"


def _write_rejects(storage: Storage, task: PartitionTask, schema: CsvSchema,
                   rejected_parts: list[str], rejects_path: str) -> str | None:
    """Merge this run's rejects parts into the rejects file in record order, or remove an
    earlier run's file when this one rejected nothing; returns the file written, if any."""
    if rejected_parts:
        # A rejected row keeps every field it was read with, the unnamed last one too.
        unnamed = [""] if schema.trailing_delimiter else []
        merge_parts(storage, rejects_header([*schema.names, *unnamed]), rejected_parts,
                    rejects_path)
    elif storage.exists(rejects_path):
        _clean_up(storage, [rejects_path], "the earlier run's rejects file")
    # Every partition's part, also one an earlier attempt left that this run did not rewrite.
    _clean_up(storage, [task.rejects_part(p) for p in range(task.partitions)], "rejects parts")
    return rejects_path if rejected_parts else None


def _clean_up(storage: Storage, uris: list[str], what: str) -> None:
    """Delete files whose removal the load's outcome does not depend on (a warning if not)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        storage.delete(uris)
    except (BotoCoreError, ClientError, OSError) as err:
        LOG.warning("could not delete %s (%s …): %s", what, uris[0], err)
