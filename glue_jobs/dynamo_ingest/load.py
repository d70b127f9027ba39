"""A run: start → plan → execute on an engine → finish, whichever engine loads the file.

:func:`run_load` resolves the source and schema, records the run in the ledger, chooses the
engine (``--engine``, or ``auto``'s small-file model), plans the partitions, write budget and
checkpoints, hands the plan to the engine (:mod:`dynamo_ingest.engine.base`) and sums up the
partitions' rows into the report and one rejects file. It imports no Spark: the Spark engine
comes in through :class:`~dynamo_ingest.engine.base.Engines` from the deployables that ship
it (:func:`dynamo_ingest.job.run`), so the loader Lambda runs the same steps without it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dynamo_ingest.control.budget import BudgetLease, BudgetShare
from dynamo_ingest.control.checkpoints import (
    LedgerSession,
    ResumePlan,
    counts_since,
    table_instance,
)
from dynamo_ingest.control.interrupt import Interrupt
from dynamo_ingest.control.locations import BucketFolders, default_rejects_path
from dynamo_ingest.control.output_paths import failure_reason
from dynamo_ingest.control.storage import ResolvedSource, Storage, is_s3, resolve_source, split_s3
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.capacity import table_write_capacity
from dynamo_ingest.core.catalog import CsvSchema, get_catalog_schema
from dynamo_ingest.core.engine_choice import EngineChoice, choose_engine
from dynamo_ingest.core.errors import ArgumentError, DynamoIngestError
from dynamo_ingest.core.formats import value_encoding
from dynamo_ingest.core.keys import KeySchema, check_key_arguments, describe_key_schema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.core.report import RowCounts, RunReport, with_unpartitioned
from dynamo_ingest.engine.base import Engine, Engines, LoadPlan, SourceText
from dynamo_ingest.engine.items import ItemBuilder
from dynamo_ingest.engine.layout import (
    TRAILING_DELIMITER_NOTE,
    read_header,
    refuse_wrong_delimiter,
)
from dynamo_ingest.engine.local import (
    PARTITION_ROWS,
    LocalEngine,
    engine_fingerprint,
    worker_count,
)
from dynamo_ingest.engine.pipeline import (
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
    measure_expansion,
    open_source,
    source_format,
)
from dynamo_ingest.engine.writer import RetryPolicy
from dynamo_ingest.estimate import Prices

LOG = logging.getLogger("dynamo_ingest")
ProgressCallback = Callable[[int, int], None]


def resolve_write_rate(args: JobArguments, table: dict[str, Any]) -> tuple[float, str]:
    """``--write_rate`` as WCU/s for the whole job (all tasks together)."""
    if args.write_rate != "auto":
        return float(args.write_rate), "--write_rate"
    capacity, origin = table_write_capacity(table)
    return capacity * args.write_share, f"{args.write_share:g} × {capacity:g} WCU/s ({origin})"


def source_text(args: JobArguments, aws: AwsConfig, source: ResolvedSource,
                catalog_encoding: str | None = None) -> SourceText:
    """The source's compression and encoding (the bytes decide, the name does not)."""
    if source.local_copy or not source.bucket:
        path, s3 = source.local_copy or source.spark_path, None
    else:
        path, s3 = source.uri, aws.client("s3")
    requested = args.encoding or catalog_encoding
    found = source_format(path, s3=s3, encoding=requested, name=source.uri)
    limits = SourceLimits(args.max_expansion, args.max_uncompressed_bytes)
    return SourceText(path, s3, source.uri, found.codec, found.encoding, limits)


def load_schema(args: JobArguments, aws: AwsConfig, source: ResolvedSource
                ) -> tuple[CsvSchema, SourceText]:
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
    engine: Engine | None = None
    keys: KeySchema | None = None  # the target table's, from DescribeTable
    table: dict[str, Any] = field(default_factory=dict)
    budget: BudgetLease | None = None  # its part of the table's shared write budget


@dataclass(frozen=True)
class _Layout:
    """What the file is: its schema and mapping (checked against the table), its text and
    that text's size."""

    schema: CsvSchema
    mapping: AttributeMapping
    text: SourceText
    text_bytes: int  # measured, or extrapolated from a compressed file's prefix
    bytes_per_row: int


def run_load(args: JobArguments, engines: Engines = Engines(), *,
             progress: ProgressCallback | None = None, job_run_id: str | None = None,
             interrupt: Interrupt | None = None) -> RunReport:
    """Load ``args.source_path`` into ``args.target_table`` with one of ``engines`` (the
    in-process engine always; Spark where the caller ships it); never raises for a failed
    load: the report's ``status`` says FAILED and ``error`` says why.

    A run Glue started (``job_run_id``) is finished in the ledger by the callback when Glue
    reports its end; any other run (``dynamo-ingest run``, a local script) finishes its own
    record the same way. ``interrupt`` (SIGINT/SIGTERM, a Lambda's deadline) stops the run:
    it ends FAILED with the counts its checkpoints hold, and the next run resumes.
    """
    started = time.monotonic()
    aws = AwsConfig.from_environ()
    report = RunReport(status="FAILED", source_path=args.source_path,
                       target_table=args.target_table)
    load = _Load(run_id=job_run_id or f"local-{uuid.uuid4().hex[:12]}",
                 finishes_itself=job_run_id is None)
    interrupt = interrupt or Interrupt()
    if engines.spark is None:
        # Known from the start, so a run that fails before choosing still says what ran it.
        report.extra["engine"] = LocalEngine.name
    try:
        _load(args, engines, aws, load, report, progress, interrupt)
    except Exception as err:
        _report_failure(report, load, interrupt, err)
    interrupt.disarm()
    if load.budget is not None:
        load.budget.leave()
    if load.source is not None:
        load.source.discard_staged_copy(Storage(aws))
    report.elapsed_s = time.monotonic() - started
    _record(report, load)
    if args.report_path:
        _write_report(report, args.report_path, aws)
    return report


def _record(report: RunReport, load: _Load) -> None:
    """The report into the ledger; a ledger that cannot take it (its endpoint gone) fails
    the run and says so in the report's error, which is kept (printed and written)."""
    if load.ledger is None:
        return
    try:
        load.ledger.record_report(load.run_id, report.to_dict(), finish=load.finishes_itself)
    except DynamoIngestError as err:
        cause = "the ledger could not record this report"
        if not report.error:
            report.error = f"{cause}: {err}"
        elif str(err) in report.error:  # the run failed on the same lost endpoint
            report.error = f"{report.error} ({cause} either)"
        else:
            report.error = f"{report.error}; {cause}: {err}"
        if report.status != "FAILED":  # a failed run keeps its own answer
            report.retryable = err.retryable
        report.status = "FAILED"


def _write_report(report: RunReport, report_path: str, aws: AwsConfig) -> None:
    """The report to ``--report_path``. The load is done whatever happens here, so a path
    that cannot be written (checked before loading by
    :func:`~dynamo_ingest.control.output_paths.refuse_unwritable_outputs`, but it can
    change) is said in the returned report instead of raising."""
    try:
        Storage(aws).put_bytes(report.to_json().encode("utf-8") + b"\n", report_path)
    except (OSError, DynamoIngestError) as err:
        report.extra["report_path_error"] = (
            f"--report_path {report_path} was not written: {failure_reason(err)}; the "
            "report is the one printed")


# A FAILED report's counts when the engine raised before returning its partitions' counts.
COUNTS_NOT_RETURNED = (
    "not known: the engine failed before it returned its partitions' counts, so the counts "
    "above are zero although items may have been written; each partition's last checkpoint "
    "in the ledger holds what it wrote (dynamo-ingest status FILE), and a retry resumes "
    "from them")


def _report_failure(report: RunReport, load: _Load, interrupt: Interrupt,
                    err: Exception) -> None:
    """The report of a run that raised: a stop request, a known error, or anything else."""
    report.status = "FAILED"
    if interrupt.requested:
        # Whatever the cancelled load raised, the cause is the request.
        if load.engine is not None:
            load.engine.stop()
        _report_interrupted(report, load, interrupt)
    elif isinstance(err, DynamoIngestError):
        LOG.debug("the run failed", exc_info=err)  # DYNAMO_INGEST_LOG=DEBUG shows where
        report.error = str(err)
        report.retryable = err.retryable
    else:
        # e.g. a task that cannot reach the ledger: report FAILED (checkpoints are kept, so
        # the retry resumes) instead of leaving the ledger STARTED with no counts.
        what = "the Spark job" if load.engine is None or load.engine.name == "spark" \
            else f"the {load.engine.name} engine"
        LOG.exception("%s failed", what)
        report.error = f"{what} failed: {_first_line(err)}"
        report.retryable = load.engine is None or not load.engine.is_permanent(err)
    if not interrupt.requested and load.engine is not None and report.counts.rows_read == 0:
        # The engine raised before it handed back its partitions' counts: the zeros are not
        # what was written.
        report.extra["counts_note"] = COUNTS_NOT_RETURNED


def _load(args: JobArguments, engines: Engines, aws: AwsConfig, load: _Load,
          report: RunReport, progress: ProgressCallback | None, interrupt: Interrupt) -> None:
    """Start → plan → execute on the chosen engine → sum up the partitions into ``report``."""
    source, ledger = _start(args, engines, aws, load, report)
    layout = _read_layout(args, aws, source, load, report)
    engine = load.engine = _engine(args, engines, layout, load, report)
    engine.arm(interrupt)
    plan = _plan(args, aws, engine, source, ledger, load, report, layout)
    interrupt.check()
    load.budget, plan = _share_budget(args, ledger, load, plan)
    if progress is not None:
        with _ProgressPoller(ledger.items_written, plan.predicted_rows, progress):
            rows = engine.execute(source, plan)
    else:
        rows = engine.execute(source, plan)
    interrupt.disarm()
    # A stopped in-process load ends its partitions early and cleanly: not a finished file.
    interrupt.check()
    _finish(rows, plan, aws, ledger, report, progress)


def _share_budget(args: JobArguments, ledger: LedgerSession, load: _Load,
                  plan: LoadPlan) -> tuple[BudgetLease | None, LoadPlan]:
    """Join the table's write-budget lease: concurrent loads of one table share its budget,
    each task pacing to its part of this load's grant."""
    per_task = plan.task.rate_per_task
    if not plan.total_rate or per_task is None:
        return None, plan
    share = BudgetShare(ledger.ledger.table_name, args.target_table, load.run_id,
                        per_task / plan.total_rate, per_task)
    budget = BudgetLease(ledger.ledger, args.target_table, load.run_id, plan.total_rate)
    try:
        budget.start()
    except DynamoIngestError as err:
        # Loading alone at the whole budget is what every load did before the lease.
        LOG.warning("could not join the write-budget lease of %s: this load paces to the "
                    "whole budget: %s", args.target_table, err)
        return None, plan
    return budget, replace(plan, task=replace(plan.task, budget_share=share))


def _start(args: JobArguments, engines: Engines, aws: AwsConfig, load: _Load,
           report: RunReport) -> tuple[ResolvedSource, LedgerSession]:
    """The source resolved, the run recorded and its lease taken, the table described."""
    # Spark in Glue reads s3:// itself; locally, and for the in-process engine, it is staged.
    source = load.source = resolve_source(args.source_path, aws,
                                          stage_s3=not engines.spark_reads_s3,
                                          expected_etag=args.source_etag,
                                          copy_folder=_spark_copy_folder(args))
    # Record the run as soon as the object is known, so a run that fails on the table, the
    # schema or the mapping still leaves its report (and reason) in the ledger.
    ledger = LedgerSession.open(aws, args.ledger_table, source, create=aws.is_emulated)
    report.attempt = ledger.job_started(load.run_id, args.to_glue_arguments())
    load.ledger = ledger
    load.keys, load.table = describe_key_schema(aws.client("dynamodb"), args.target_table)
    return source, ledger


def _read_layout(args: JobArguments, aws: AwsConfig, source: ResolvedSource, load: _Load,
                 report: RunReport) -> _Layout:
    """The file's schema, mapping and text, checked against the table before any engine
    starts (a wrong key, mapping or a decompression bomb fails here, with no Spark up)."""
    assert load.keys is not None, "_start describes the table"
    check_key_arguments(load.keys, args.partition_key, args.sort_key, args.target_table)
    schema, text = load_schema(args, aws, source)
    mapping = AttributeMapping.from_arguments(args)
    ItemBuilder(schema.columns, load.keys, args.empty_value, mapping)
    # Sizes are the text's: a compressed file's is measured on a prefix (a bomb fails here).
    expansion = measure_expansion(text.path, s3=text.s3, limits=text.limits, name=text.name)
    _report_text(report, text, expansion)
    return _Layout(schema, mapping, text, expansion.text_bytes, _bytes_per_row(text))


def _engine(args: JobArguments, engines: Engines, layout: _Layout, load: _Load,
            report: RunReport) -> Engine:
    """The engine that loads the file (Spark starts here when it is chosen and not up)."""
    choice = _choose_engine(args, engines, layout, load.table)
    report.extra["engine"] = choice.engine
    report.extra["engine_reason"] = choice.reason
    LOG.info("engine %s", choice.reason)
    if choice.engine == "local":
        return LocalEngine(load.run_id, _predicted_rows(layout))
    if engines.spark is None:
        raise ArgumentError(
            "--engine spark: this deployable ships no Spark (the loader Lambda runs the "
            "in-process engine only); leave --engine auto or load the file with the Glue job")
    return engines.spark()


def _choose_engine(args: JobArguments, engines: Engines, layout: _Layout,
                   table: dict[str, Any]) -> EngineChoice:
    """``--engine`` as given, or for ``auto`` the small-file model at the table's write rate."""
    if args.engine != "auto":
        return EngineChoice(args.engine, 0.0, f"{args.engine}: --engine {args.engine}")
    if engines.spark is None:
        return EngineChoice("local", 0.0, "local: --engine auto where no Spark ships")
    if engines.spark_running:
        # A Glue job (or a caller holding a session) started Spark before the job could
        # choose: its start-up is paid. Small files reach the loader Lambda instead.
        return EngineChoice("spark", 0.0, "spark: --engine auto with Spark already running "
                                          "(a Glue job run)")
    per_row = layout.bytes_per_row
    return choose_engine(layout.text_bytes, resolve_write_rate(args, table)[0],
                         bytes_per_row=per_row, wcu_per_row=write_units(per_row),
                         workers=worker_count())


def _plan(args: JobArguments, aws: AwsConfig, engine: Engine, source: ResolvedSource,
          ledger: LedgerSession, load: _Load, report: RunReport, layout: _Layout) -> LoadPlan:
    """The partitions (a resume reuses the earlier run's), the write rate and the
    checkpoint interval, and the task every partition runs."""
    if args.restart:
        ledger.clear_checkpoints()
    parallelism = engine.parallelism()
    predicted_rows = _predicted_rows(layout)
    # The in-process engine sorts a partition of up to PARTITION_ROWS rows in memory.
    partitions = args.partitions or default_partitions(
        parallelism, layout.text_bytes, predicted_rows,
        PARTITION_ROWS if engine.name == "local" else None)
    # Each engine resumes only its own checkpoints (see engine.local.engine_fingerprint).
    resume = load.plan = ledger.resume_plan(
        partitions, load.run_id, engine_fingerprint(args.load_fingerprint(), engine.name),
        table_instance(load.table))
    if resume.discarded:
        report.extra["checkpoints_discarded"] = resume.discarded
    total_rate, rate_origin = resolve_write_rate(args, load.table)
    rejects_path = args.rejects_path or default_rejects_path(
        source.bucket, source.key, _bucket_folders(args))
    checkpoint_every = (auto_checkpoint_every(predicted_rows, resume.partitions, parallelism)
                        if args.checkpoint_every == "auto" else int(args.checkpoint_every))
    task = _task(args, aws, source, load, layout, resume,
                 rate_per_task(total_rate, resume.unfinished, parallelism), rejects_path,
                 checkpoint_every)
    LOG.info("loading %s into %s with the %s engine: %d partitions, %.0f WCU/s (%s), a "
             "checkpoint every %d batches", source.uri, args.target_table, engine.name,
             resume.partitions, total_rate, rate_origin, checkpoint_every)
    assert load.keys is not None
    return LoadPlan(task, layout.schema,
                    layout.mapping.key_hash_parts(layout.schema.columns, load.keys),
                    rejects_path, predicted_rows, total_rate, parallelism, layout.text,
                    layout.text_bytes)


def _task(args: JobArguments, aws: AwsConfig, source: ResolvedSource, load: _Load,
          layout: _Layout, resume: ResumePlan, rate: float | None, rejects_path: str,
          checkpoint_every: int) -> PartitionTask:
    """What every partition runs, resolved once (keys, mapping, layout, budget share)."""
    assert load.keys is not None
    schema, mapping = layout.schema, layout.mapping
    return PartitionTask(
        columns=schema.columns, key_schema=load.keys, target_table=args.target_table,
        empty_value=args.empty_value, delimiter=schema.delimiter,
        quote_char=schema.quote_char, aws=aws,
        retry=RetryPolicy(max_retry_seconds=args.max_retry_seconds),
        # A resume splits the budget over the partitions still to write.
        rate_per_task=rate, rejects_parts_prefix=rejects_path + ".parts",
        checkpoint_every=checkpoint_every, ledger_table=args.ledger_table,
        source_key=(source.bucket, source.key, source.etag), partitions=resume.partitions,
        resume=not args.restart, mapping=None if mapping.is_identity else mapping,
        write_mode=args.write_mode, trailing_delimiter=schema.trailing_delimiter,
        value_encoding=value_encoding(layout.text.encoding))


def _report_text(report: RunReport, text: SourceText, expansion: Expansion) -> None:
    """What the report says about the source's form: compression, encoding, text size."""
    if text.codec is not None:
        report.extra["compression"] = text.codec.name
        report.extra["source_text_bytes"] = expansion.text_bytes
        if expansion.estimated:
            report.extra["source_text_bytes_estimated"] = (
                "extrapolated from the expansion of the first MBs")
    if text.encoding != "utf-8":
        report.extra["encoding"] = text.encoding


def _finish(rows: list[Any], plan: LoadPlan, aws: AwsConfig, ledger: LedgerSession,
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
            report.extra["file_counts"] = with_unpartitioned(file_counts, rows,
                                                             plan.task.partitions)
        # A finished load leaves no checkpoints: the next run of this object starts fresh.
        ledger.clear_checkpoints()


def _sum_up(rows: list[Any], task: PartitionTask, schema: CsvSchema, aws: AwsConfig,
            rejects_path: str, report: RunReport) -> None:
    """The partitions' rows → the report's counts, status and one rejects file."""
    counts = RowCounts()
    errors = []
    rejected_parts = []
    for row in rows:
        partition = RowCounts(**{k: row[k] for k in RowCounts.__dataclass_fields__})
        partition.count_carried_rejects(row["rejects_written"])
        counts.add(partition)
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
    elif counts.rows_rejected:
        # The one rule for the status (the ledger's final state copies it): rows were
        # rejected, the earlier attempts' too, so the rejects file holds them.
        report.status = "SUCCEEDED_WITH_REJECTS"
    else:
        report.status = "SUCCEEDED"


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


def _first_line(err: BaseException) -> str:
    """The useful line of an exception (Spark's carry a JVM stack trace)."""
    text = str(err).strip()
    for line in text.splitlines():
        if "Error" in line or "Exception" in line:
            return line.strip()[:500]
    return text.splitlines()[0][:500] if text else type(err).__name__


def _predicted_rows(layout: _Layout) -> int:
    """The file's rows, predicted from its text size and its first MB's bytes per row."""
    return max(1, layout.text_bytes // max(1, layout.bytes_per_row))


def _bytes_per_row(text: SourceText) -> int:
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
    # Every partition's part, also one an earlier attempt left that this run did not rewrite,
    # and the in-process splitter's, numbered after them.
    _clean_up(storage, [task.rejects_part(p) for p in range(task.partitions + 1)],
              "rejects parts")
    return rejects_path if rejected_parts else None


def _clean_up(storage: Storage, uris: list[str], what: str) -> None:
    """Delete files whose removal the load's outcome does not depend on (a warning if not)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        storage.delete(uris)
    except (BotoCoreError, ClientError, OSError) as err:
        LOG.warning("could not delete %s (%s …): %s", what, uris[0], err)
