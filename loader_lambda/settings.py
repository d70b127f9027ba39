"""The loader Lambda's settings, read from its environment at invocation time.

Terraform sets exactly these variables; a test parses :meth:`Settings.from_env` to check it,
so variables are read only as ``environ["NAME"]`` or ``environ.get("NAME", "default")``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from dynamo_ingest.control.locations import BucketFolders, settings_problem

from loader_lambda.errors import SettingsError

# Time kept back from the Lambda's deadline to stop cleanly: the in-flight batches are
# acknowledged, the rejects merged, the report recorded and the next invocation started.
DEFAULT_DEADLINE_MARGIN_S = 60


@dataclass(frozen=True)
class Settings:
    """What the loader needs to load, finish, continue or retry a file."""

    ledger_table: str
    sns_topic_arn: str
    max_attempts: int = 3
    max_continuations: int = 20
    deadline_margin_s: int = DEFAULT_DEADLINE_MARGIN_S
    incoming_prefix: str = "incoming/"
    complete_prefix: str = "complete/"
    error_prefix: str = "error/"
    dispatcher_function: str = ""  # woken when a load ends ("": the schedule's sweep only)
    # The Glue job's DefaultArguments that are job arguments (Terraform builds both from one
    # local): applied under each request's arguments, as Glue applies its defaults.
    job_default_arguments: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read the settings; :class:`SettingsError` names a missing or unusable variable."""
        try:
            ledger_table = environ["LEDGER_TABLE"]
            sns_topic_arn = environ["SNS_TOPIC_ARN"]
        except KeyError as err:
            raise SettingsError(f"environment variable {err.args[0]} is required and not set; "
                                "set it in the function's configuration (terraform)") from err
        raw = {"MAX_ATTEMPTS": environ.get("MAX_ATTEMPTS", "3"),
               "MAX_CONTINUATIONS": environ.get("MAX_CONTINUATIONS", "20"),
               "DEADLINE_MARGIN_S": environ.get("DEADLINE_MARGIN_S", "60")}
        numbers: dict[str, int] = {}
        for name, text in raw.items():
            try:
                numbers[name] = int(text)
            except ValueError as err:
                raise SettingsError(f"{name} expects a whole number, found {text!r}") from err
        settings = cls(ledger_table=ledger_table, sns_topic_arn=sns_topic_arn,
                       max_attempts=numbers["MAX_ATTEMPTS"],
                       max_continuations=numbers["MAX_CONTINUATIONS"],
                       deadline_margin_s=numbers["DEADLINE_MARGIN_S"],
                       incoming_prefix=environ.get("INCOMING_PREFIX", "incoming/"),
                       complete_prefix=environ.get("COMPLETE_PREFIX", "complete/"),
                       error_prefix=environ.get("ERROR_PREFIX", "error/"),
                       dispatcher_function=environ.get("DISPATCHER_FUNCTION", ""),
                       job_default_arguments=_job_arguments(
                           environ.get("JOB_DEFAULT_ARGUMENTS", "{}")))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that would lose files, loop, or make moved files re-trigger."""
        problem = settings_problem({"LEDGER_TABLE": self.ledger_table,
                                    "SNS_TOPIC_ARN": self.sns_topic_arn}, self.folders)
        if problem:
            raise SettingsError(problem)
        if self.max_attempts < 1 or self.max_continuations < 0 or self.deadline_margin_s < 1:
            raise SettingsError(
                f"expected MAX_ATTEMPTS >= 1, MAX_CONTINUATIONS >= 0 and DEADLINE_MARGIN_S >= 1, "
                f"found {self.max_attempts}, {self.max_continuations}, {self.deadline_margin_s}")

    @property
    def folders(self) -> BucketFolders:
        """The bucket's folders."""
        return BucketFolders(incoming=self.incoming_prefix, complete=self.complete_prefix,
                             error=self.error_prefix)

    def to_env(self) -> dict[str, str]:
        """The environment that :meth:`from_env` reads back into these settings."""
        return {"LEDGER_TABLE": self.ledger_table, "SNS_TOPIC_ARN": self.sns_topic_arn,
                "MAX_ATTEMPTS": str(self.max_attempts),
                "MAX_CONTINUATIONS": str(self.max_continuations),
                "DEADLINE_MARGIN_S": str(self.deadline_margin_s),
                "INCOMING_PREFIX": self.incoming_prefix,
                "COMPLETE_PREFIX": self.complete_prefix, "ERROR_PREFIX": self.error_prefix,
                "DISPATCHER_FUNCTION": self.dispatcher_function,
                "JOB_DEFAULT_ARGUMENTS": json.dumps(dict(self.job_default_arguments),
                                                    sort_keys=True)}


def _job_arguments(text: str) -> dict[str, str]:
    """``JOB_DEFAULT_ARGUMENTS``: a JSON object of ``--name`` → text, as Glue's arguments."""
    try:
        value = json.loads(text)
    except ValueError as err:
        raise SettingsError(f"JOB_DEFAULT_ARGUMENTS expects a JSON object of job arguments, "
                            f"found {text[:80]!r}: {err}") from err
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and k.startswith("--") and isinstance(v, str)
            for k, v in value.items()):
        raise SettingsError(f"JOB_DEFAULT_ARGUMENTS expects a JSON object of \"--name\": "
                            f"\"text\" pairs (Glue's DefaultArguments form), found {text[:80]!r}")
    return value
