"""The trigger Lambda's settings, read from its environment at invocation time.

Terraform sets exactly these variables; a test parses :meth:`Settings.from_env` to check it,
so variables are read only as ``environ["NAME"]`` or ``environ.get("NAME", "default")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamo_ingest.control.locations import BucketFolders, settings_problem

from trigger_lambda.errors import SettingsError
from trigger_lambda.routing import DEFAULT_SMALL_FILE_BYTES, Routing


@dataclass(frozen=True)
class Settings:
    """What the trigger needs to start the Glue job for a new object."""

    glue_job_name: str
    ledger_table: str
    target_table: str
    partition_key: str
    sns_topic_arn: str
    sort_key: str = ""
    catalog_database: str = ""
    catalog_table: str = ""
    incoming_prefix: str = "incoming/"
    error_prefix: str = "error/"
    # The dispatcher (this function's other mode): the upload order policy, how many files
    # of the table load at once under the parallel policy, and how long the sweep leaves an
    # upload without an event before it queues it itself.
    source_bucket: str = ""  # the bucket the sweep lists (S3 events name theirs)
    upload_order: str = "serial"
    table_max_loads: int = 3
    sweep_grace_s: float = 300.0
    loader_function: str = ""  # the loader Lambda for small files ("": every file to Glue)
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings; :class:`SettingsError` names a missing or unusable variable."""
        # The default is DEFAULT_SMALL_FILE_BYTES, written out: the contract is read literally.
        raw_small = environ.get("SMALL_FILE_BYTES", "16777216")
        try:
            raw_loads = environ.get("TABLE_MAX_LOADS", "3")
            raw_grace = environ.get("SWEEP_GRACE_S", "300")
            settings = cls(
                glue_job_name=environ["GLUE_JOB_NAME"],
                ledger_table=environ["LEDGER_TABLE"],
                target_table=environ["TARGET_TABLE"],
                partition_key=environ["PARTITION_KEY"],
                sns_topic_arn=environ["SNS_TOPIC_ARN"],
                sort_key=environ.get("SORT_KEY", ""),
                catalog_database=environ.get("CATALOG_DATABASE", ""),
                catalog_table=environ.get("CATALOG_TABLE", ""),
                incoming_prefix=environ.get("INCOMING_PREFIX", "incoming/"),
                error_prefix=environ.get("ERROR_PREFIX", "error/"),
                source_bucket=environ.get("SOURCE_BUCKET", ""),
                upload_order=environ.get("UPLOAD_ORDER", "serial"),
                table_max_loads=int(raw_loads), sweep_grace_s=float(raw_grace),
                loader_function=environ.get("LOADER_FUNCTION", ""),
                small_file_bytes=int(raw_small),
            )
        except KeyError as err:
            raise SettingsError(f"environment variable {err.args[0]} is required and not set; "
                                "set it in the function's configuration (terraform)") from err
        except ValueError as err:
            raise SettingsError(f"TABLE_MAX_LOADS expects a whole number of files, "
                                f"SWEEP_GRACE_S seconds and SMALL_FILE_BYTES bytes (files "
                                f"under it load in the loader Lambda), found {raw_loads!r}, "
                                f"{raw_grace!r} and {raw_small!r}") from err
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that would start wrong runs or make moved files re-trigger."""
        problem = settings_problem(
            {"GLUE_JOB_NAME": self.glue_job_name, "LEDGER_TABLE": self.ledger_table,
             "TARGET_TABLE": self.target_table, "PARTITION_KEY": self.partition_key,
             "SNS_TOPIC_ARN": self.sns_topic_arn}, self.folders, known=("incoming", "error"))
        if problem:
            raise SettingsError(problem)
        if bool(self.catalog_database) != bool(self.catalog_table):
            raise SettingsError("CATALOG_DATABASE and CATALOG_TABLE go together: set both or "
                                f"neither (found {self.catalog_database!r}, "
                                f"{self.catalog_table!r})")
        if self.upload_order not in ("serial", "parallel") or self.table_max_loads < 1:
            raise SettingsError(f"UPLOAD_ORDER expects serial or parallel and TABLE_MAX_LOADS "
                                f"at least 1, found {self.upload_order!r} and "
                                f"{self.table_max_loads}")

    @property
    def routing(self) -> Routing:
        """Where files load: the loader function under the threshold, else the Glue job."""
        return Routing(self.glue_job_name, self.loader_function, self.small_file_bytes)

    @property
    def folders(self) -> BucketFolders:
        """The bucket's folders this trigger knows (complete/ is the callback's business)."""
        return BucketFolders(incoming=self.incoming_prefix, error=self.error_prefix)

    def to_env(self) -> dict[str, str]:
        """The environment that :meth:`from_env` reads back into these settings."""
        return {"GLUE_JOB_NAME": self.glue_job_name, "LEDGER_TABLE": self.ledger_table,
                "TARGET_TABLE": self.target_table, "PARTITION_KEY": self.partition_key,
                "SNS_TOPIC_ARN": self.sns_topic_arn, "SORT_KEY": self.sort_key,
                "CATALOG_DATABASE": self.catalog_database, "CATALOG_TABLE": self.catalog_table,
                "INCOMING_PREFIX": self.incoming_prefix,
                "SOURCE_BUCKET": self.source_bucket, "UPLOAD_ORDER": self.upload_order,
                "TABLE_MAX_LOADS": str(self.table_max_loads),
                "SWEEP_GRACE_S": f"{self.sweep_grace_s:g}",
                "ERROR_PREFIX": self.error_prefix, "LOADER_FUNCTION": self.loader_function,
                "SMALL_FILE_BYTES": str(self.small_file_bytes)}
