"""The local deployment the demo and `retry` share: names, settings and the job runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, parse_job_arguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.spark.runtime import Runtime

from callback_lambda.settings import Settings as CallbackSettings
from loader_lambda.settings import Settings as LoaderSettings
from trigger_lambda.routing import DEFAULT_SMALL_FILE_BYTES
from trigger_lambda.settings import Settings as TriggerSettings

LOCAL_BUCKET = "dynamo-ingest-local"
LOCAL_DATABASE = "dynamo_ingest"
LOCAL_CATALOG_TABLE = "orders"
LOCAL_TABLE = "orders"
LOCAL_JOB = "dynamo-ingest-load"
LOCAL_TOPIC = "dynamo-ingest-events"


@dataclass(frozen=True)
class LocalDeployment:
    """What Terraform deploys, as the local flow needs it."""

    bucket: str = LOCAL_BUCKET
    database: str = LOCAL_DATABASE
    catalog_table: str = LOCAL_CATALOG_TABLE
    target_table: str = LOCAL_TABLE
    partition_key: str = "orderId"
    job_name: str = LOCAL_JOB
    ledger_table: str = DEFAULT_LEDGER_TABLE
    topic_arn: str = ""
    # The loader Lambda for small files ("": every file goes to the Glue job).
    loader_function: str = ""
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES

    def trigger_settings(self) -> TriggerSettings:
        """The trigger Lambda's environment."""
        return TriggerSettings(glue_job_name=self.job_name, ledger_table=self.ledger_table,
                               target_table=self.target_table, partition_key=self.partition_key,
                               sns_topic_arn=self.topic_arn,
                               catalog_database=self.database, catalog_table=self.catalog_table,
                               loader_function=self.loader_function,
                               small_file_bytes=self.small_file_bytes)

    def loader_settings(self) -> LoaderSettings:
        """The loader Lambda's environment."""
        return LoaderSettings(ledger_table=self.ledger_table, sns_topic_arn=self.topic_arn)

    def callback_settings(self) -> CallbackSettings:
        """The callback Lambda's environment."""
        return CallbackSettings(glue_job_name=self.job_name, ledger_table=self.ledger_table,
                                sns_topic_arn=self.topic_arn)


@dataclass
class JobRunner:
    """Runs the Glue job the way Glue would (argv in, exit code out) on one local Spark
    (``runtime``, or the one ``runtime_factory`` starts for the first run)."""

    runtime: Runtime | None
    run_report: Callable[..., RunReport]
    reports: list[RunReport] = field(default_factory=list)
    runtime_factory: Callable[[], Runtime] | None = None

    def __call__(self, argv: list[str]) -> int:
        args = parse_job_arguments(argv)
        run_id = argv[argv.index("--JOB_RUN_ID") + 1] if "--JOB_RUN_ID" in argv else None
        if self.runtime is None and self.runtime_factory is not None:
            self.runtime = self.runtime_factory()
        report = self.run_report(args, self.runtime, job_run_id=run_id)
        self.reports.append(report)
        return 0 if report.status != "FAILED" else 1


def ensure_topic(sns: Any, name: str = LOCAL_TOPIC) -> str:
    """Create (idempotently) the SNS topic and return its ARN."""
    return str(sns.create_topic(Name=name)["TopicArn"])
