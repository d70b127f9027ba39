"""`dynamo-ingest flow FILE... --target_table T [job options]`: many files through the local
event flow, as AWS would carry them.

The files are uploaded to ``incoming/`` in the order given (their upload order), one right
after another; then :class:`local_aws.stream_flow.StreamFlow` delivers S3's events (at least
once, some twice, not in order), enforces Glue's ``MaxConcurrentRuns``, runs the loads the
dispatcher starts (files under ``--small_file_bytes`` in the loader Lambda's handler, the
others as Glue runs whose state changes go to the callback), delivers the dispatcher's
wake-ups and runs the scheduled sweep, until every file is settled. One row per file says
where it ended and what loaded it.

Like ``demo``, it starts an embedded moto server unless the AWS endpoint variables are set.
A flow killed midway and started again with the same files carries on: the ledger and the
bucket hold its state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynamo_ingest.control.ledger import LedgerRecord, LedgerStatus
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, parse_job_arguments
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import ArgumentError, MissingTableError
from dynamo_ingest.core.keys import (
    KeySchema,
    check_key_arguments,
    describe_key_schema,
    key_attribute_from_argument,
)
from dynamo_ingest.core.report import RunReport
from rich.console import Console
from rich.table import Table

from callback_lambda.settings import Settings as CallbackSettings
from dynamo_ingest_cli.demo import local_endpoint
from dynamo_ingest_cli.local_flow import LOCAL_BUCKET, LOCAL_DATABASE, LOCAL_JOB, ensure_topic
from dynamo_ingest_cli.status import COUNT_COLUMNS, count_cells, record_engine
from loader_lambda.settings import Settings as LoaderSettings
from local_aws.glue_runs import ConcurrentGlue
from local_aws.lambda_invocations import LambdaInvocations
from local_aws.orchestration import LOADER_FUNCTION
from local_aws.s3_events import DeliveryPlan
from local_aws.stream_flow import DISPATCHER_FUNCTION, FlowCounters, StreamFlow
from trigger_lambda.routing import DEFAULT_SMALL_FILE_BYTES
from trigger_lambda.settings import Settings as TriggerSettings

# Terraform's default of var.glue_max_concurrent_runs (a test keeps the two equal).
DEFAULT_MAX_CONCURRENT_RUNS = 3
# What the flow itself decides per file, never a job option of its own.
FLOW_OWNED_OPTIONS = frozenset({"source_path", "source_etag", "rejects_path", "report_path",
                                "load_time", "restart", "incoming_prefix", "error_prefix"})
# Passed by the trigger from its settings; every other option is one of the job's
# DefaultArguments, as Terraform sets them.
TRIGGER_OPTIONS = frozenset({"target_table", "partition_key", "sort_key", "catalog_database",
                             "catalog_table", "ledger_table"})


@dataclass(frozen=True)
class FlowOptions:
    """What ``flow`` was asked to do."""

    files: tuple[Path, ...]
    job_values: Mapping[str, str]  # Glue-style --name → value
    max_concurrent_runs: int = DEFAULT_MAX_CONCURRENT_RUNS
    upload_order: str = "serial"
    seed: int = 0
    duplicate_share: float = 0.25
    # Terraform's var.small_file_bytes: files under it load in the loader Lambda (0: none).
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES
    bucket: str = LOCAL_BUCKET
    job_name: str = LOCAL_JOB

    def __post_init__(self) -> None:
        missing = [str(p) for p in self.files if not p.is_file()]
        if missing:
            raise ArgumentError(f"expected CSV files to upload, found no file at "
                                f"{', '.join(missing)}")
        names = [p.name for p in self.files]
        if len(set(names)) != len(names):
            raise ArgumentError(f"each file becomes incoming/<name>: expected distinct names, "
                                f"found {sorted(n for n in set(names) if names.count(n) > 1)}")
        if self.max_concurrent_runs < 1:
            raise ArgumentError(f"--max_concurrent_runs expects at least 1 run, found "
                                f"{self.max_concurrent_runs}")
        if self.small_file_bytes < 0:
            raise ArgumentError(f"--small_file_bytes expects 0 (every file to Glue) or more "
                                f"bytes, found {self.small_file_bytes}")

    def value(self, name: str, default: str = "") -> str:
        """A job option's value (Glue-style name without the dashes)."""
        return self.job_values.get(f"--{name}", default)

    @property
    def default_arguments(self) -> dict[str, str]:
        """The Glue job's DefaultArguments: every job option the trigger does not pass."""
        return {k: v for k, v in self.job_values.items() if k[2:] not in TRIGGER_OPTIONS}


@dataclass
class QuietJobRunner:
    """Runs the Glue job the way Glue would (argv in, exit code out), quietly; one Spark
    session for every ``--engine spark`` run (``auto`` starts one only when it picks Spark)."""

    reports: list[RunReport] = field(default_factory=list)
    _runtime: Any = None

    def __call__(self, argv: list[str]) -> int:
        from dynamo_ingest.job import run

        args = parse_job_arguments(argv)
        if args.engine == "spark" and self._runtime is None:
            from dynamo_ingest.spark.runtime import local_runtime

            self._runtime = local_runtime()
        run_id = argv[argv.index("--JOB_RUN_ID") + 1]
        report = run(args, self._runtime, job_run_id=run_id)
        self.reports.append(report)
        return 0 if report.status != "FAILED" else 1


@dataclass(frozen=True)
class FlowSettings:
    """The three functions' settings, as Terraform sets them."""

    trigger: TriggerSettings
    callback: CallbackSettings
    loader: LoaderSettings


def _settings(options: FlowOptions, key: KeySchema, topic_arn: str) -> FlowSettings:
    ledger = options.value("ledger_table", DEFAULT_LEDGER_TABLE)
    # Terraform sets the table's key names, which every run then checks against the table.
    trigger = TriggerSettings(
        glue_job_name=options.job_name, ledger_table=ledger,
        target_table=options.value("target_table"),
        partition_key=key.partition.name, sns_topic_arn=topic_arn,
        sort_key=key.sort.name if key.sort else "",
        catalog_database=options.value("catalog_database"),
        catalog_table=options.value("catalog_table"), source_bucket=options.bucket,
        upload_order=options.upload_order, table_max_loads=options.max_concurrent_runs,
        loader_function=LOADER_FUNCTION, small_file_bytes=options.small_file_bytes)
    trigger.validate()
    callback = CallbackSettings(glue_job_name=options.job_name, ledger_table=ledger,
                                sns_topic_arn=topic_arn)
    loader = LoaderSettings(ledger_table=ledger, sns_topic_arn=topic_arn,
                            dispatcher_function=DISPATCHER_FUNCTION,
                            job_default_arguments=options.default_arguments)
    return FlowSettings(trigger, callback, loader)


def target_key(dynamodb: Any, options: FlowOptions, *, embedded_moto: bool) -> KeySchema:
    """The target table's key, by `run`'s rule when the table exists: its own schema, which
    ``--partition_key``/``--sort_key`` (optional then) must match. A missing table is created
    only on the embedded moto server, from the key options (``NAME[:S|N|B]``, as `init`
    takes them); on the user's endpoint the table is theirs and its absence is refused in
    run's words."""
    table, partition, sort = (options.value(n) for n in ("target_table", "partition_key",
                                                           "sort_key"))
    try:
        schema, _ = describe_key_schema(dynamodb, table)
    except MissingTableError:
        if not embedded_moto:
            raise
        if not partition:
            raise ArgumentError(f"flow creates the missing table {table!r} on its moto server "
                                "and expected --partition_key NAME[:S|N|B] for it, found none"
                                ) from None
        return KeySchema(key_attribute_from_argument("partition_key", partition),
                         key_attribute_from_argument("sort_key", sort) if sort else None)
    check_key_arguments(schema, partition or None, sort or None, table)
    return schema


def _deploy(aws: AwsConfig, options: FlowOptions, key: KeySchema, console: Console) -> None:
    """What Terraform would create: bucket, catalog database, ledger and the Glue job with its
    limit and arguments; the target table too when missing (:func:`target_key` says when)."""
    from local_aws.orchestration import apply_job_options, ensure_local_job
    from local_aws.resources import ensure_resources

    ensure_resources(bucket=options.bucket, database=LOCAL_DATABASE,
                     target_table=options.value("target_table"),
                     partition_key=(key.partition.name, key.partition.type),
                     sort_key=(key.sort.name, key.sort.type) if key.sort else None,
                     ledger_table=options.value("ledger_table", DEFAULT_LEDGER_TABLE))
    glue = aws.client("glue")
    ensure_local_job(glue, options.job_name, max_concurrent_runs=options.max_concurrent_runs,
                     default_arguments=options.default_arguments)
    # An existing job (an earlier flow's) takes this flow's options, as README promises.
    changes = apply_job_options(glue, options.job_name,
                                max_concurrent_runs=options.max_concurrent_runs,
                                default_arguments=options.default_arguments)
    if changes:
        console.print(f"Glue job {options.job_name} updated: {', '.join(changes)}")


def run_flow(options: FlowOptions, *, console: Console, out: Console) -> int:
    """Upload, deliver until settled, print one row per file; 1 when a file failed."""
    from dynamo_ingest.control.ledger import Ledger

    with local_endpoint(console) as endpoint, LambdaInvocations() as invocations:
        aws = AwsConfig.from_environ()
        key = target_key(aws.client("dynamodb"), options,
                         embedded_moto=endpoint.embedded_moto)
        settings = _settings(options, key, ensure_topic(aws.client("sns")))
        _deploy(aws, options, key, console)
        flow = StreamFlow(
            s3=aws.client("s3"), glue=ConcurrentGlue(aws.client("glue")),
            sns=aws.client("sns"),
            ledger=Ledger(aws.client("dynamodb"), settings.trigger.ledger_table),
            bucket=options.bucket, trigger_settings=settings.trigger,
            callback_settings=settings.callback, run_job=QuietJobRunner(),
            invocations=invocations, loader_settings=settings.loader,
            delivery=DeliveryPlan(duplicate_share=options.duplicate_share, seed=options.seed))
        adopted = flow.adopt_going_runs()
        if adopted:
            console.print(f"carrying on an earlier flow: {adopted} load(s) were going")
        uploads = flow.upload(options.files)
        console.print(f"uploaded {len(uploads)} file(s) to s3://{options.bucket}/"
                      f"{settings.trigger.incoming_prefix}; delivering events …")
        records = flow.settle(uploads)
    out.print(outcome_table(records))
    for record in records:
        if record.status == LedgerStatus.FAILED:
            out.print(f"{record.source.key} failed: {record.error}", soft_wrap=True)
    console.print(counters_line(flow.counters))
    return 1 if any(r.status == LedgerStatus.FAILED for r in records) else 0


def outcome_table(records: Sequence[LedgerRecord]) -> Table:
    """One row per file, in upload order (a failed file's reason follows the table)."""
    table = Table(title="flow outcome (upload order)")
    # The last run's own counts, as `status` shows them (they add up to "read").
    for column in ("file", "final location", "status", "engine", "attempts", *COUNT_COLUMNS):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(r.source.key, r.file_location or "", str(r.status), record_engine(r),
                      str(r.attempts), *count_cells(r))
    return table


def counters_line(counters: FlowCounters) -> str:
    """What AWS's part of the flow delivered."""
    return (f"events delivered {counters.events_delivered} ({counters.events_duplicated} "
            f"twice), loader Lambda invocations {counters.loader_invocations}, Glue runs "
            f"{counters.runs_executed} (at most {counters.max_runs_going} at once, "
            f"{counters.concurrency_refusals} start(s) refused for concurrency), "
            f"dispatches {counters.dispatches}, sweeps {counters.sweeps}")
