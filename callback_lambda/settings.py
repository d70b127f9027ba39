"""The callback Lambda's settings, read from its environment at invocation time.

Terraform sets exactly these variables; a test parses :meth:`Settings.from_env` to check it,
so variables are read only as ``environ["NAME"]`` or ``environ.get("NAME", "default")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamo_ingest.control.locations import BucketFolders, settings_problem

from callback_lambda.errors import SettingsError


@dataclass(frozen=True)
class Settings:
    """What the callback needs to finish, retry or fail a file's load."""

    glue_job_name: str
    ledger_table: str
    sns_topic_arn: str
    max_attempts: int = 3
    incoming_prefix: str = "incoming/"
    complete_prefix: str = "complete/"
    error_prefix: str = "error/"
    dispatcher_function: str = ""  # woken when a load ends ("": the schedule's sweep only)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings; :class:`SettingsError` names a missing or unusable variable."""
        try:
            raw_attempts = environ.get("MAX_ATTEMPTS", "3")
            settings = cls(
                glue_job_name=environ["GLUE_JOB_NAME"],
                ledger_table=environ["LEDGER_TABLE"],
                sns_topic_arn=environ["SNS_TOPIC_ARN"],
                max_attempts=int(raw_attempts),
                incoming_prefix=environ.get("INCOMING_PREFIX", "incoming/"),
                complete_prefix=environ.get("COMPLETE_PREFIX", "complete/"),
                error_prefix=environ.get("ERROR_PREFIX", "error/"),
                dispatcher_function=environ.get("DISPATCHER_FUNCTION", ""),
            )
        except KeyError as err:
            raise SettingsError(f"environment variable {err.args[0]} is required and not set; "
                                "set it in the function's configuration (terraform)") from err
        except ValueError as err:
            raise SettingsError(f"MAX_ATTEMPTS expects a whole number of runs (3 = the first "
                                f"run + 2 retries), found {raw_attempts!r}") from err
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that would lose files or make moved files re-trigger."""
        problem = settings_problem({"GLUE_JOB_NAME": self.glue_job_name,
                                    "LEDGER_TABLE": self.ledger_table,
                                    "SNS_TOPIC_ARN": self.sns_topic_arn}, self.folders)
        if problem:
            raise SettingsError(problem)
        if self.max_attempts < 1:
            raise SettingsError(f"MAX_ATTEMPTS expects at least 1 run, found {self.max_attempts}")

    @property
    def folders(self) -> BucketFolders:
        """The bucket's folders."""
        return BucketFolders(incoming=self.incoming_prefix, complete=self.complete_prefix,
                             error=self.error_prefix)

    def to_env(self) -> dict[str, str]:
        """The environment that :meth:`from_env` reads back into these settings."""
        return {"GLUE_JOB_NAME": self.glue_job_name, "LEDGER_TABLE": self.ledger_table,
                "SNS_TOPIC_ARN": self.sns_topic_arn, "MAX_ATTEMPTS": str(self.max_attempts),
                "INCOMING_PREFIX": self.incoming_prefix,
                "COMPLETE_PREFIX": self.complete_prefix, "ERROR_PREFIX": self.error_prefix,
                "DISPATCHER_FUNCTION": self.dispatcher_function}
