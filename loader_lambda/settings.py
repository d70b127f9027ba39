"""The loader Lambda's settings, read from its environment at invocation time.

Terraform sets exactly these variables; a test parses :meth:`Settings.from_env` to check it,
so variables are read only as ``environ["NAME"]`` or ``environ.get("NAME", "default")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamo_ingest.control.locations import BucketFolders

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
                       dispatcher_function=environ.get("DISPATCHER_FUNCTION", ""))
        settings.validate()
        return settings

    def validate(self) -> None:
        """Reject values that would lose files, loop, or make moved files re-trigger."""
        for name in ("ledger_table", "sns_topic_arn", "incoming_prefix", "complete_prefix",
                     "error_prefix"):
            if not getattr(self, name):
                raise SettingsError(f"{name.upper()} must not be empty")
        if self.max_attempts < 1 or self.max_continuations < 0 or self.deadline_margin_s < 1:
            raise SettingsError(
                f"expected MAX_ATTEMPTS >= 1, MAX_CONTINUATIONS >= 0 and DEADLINE_MARGIN_S >= 1, "
                f"found {self.max_attempts}, {self.max_continuations}, {self.deadline_margin_s}")
        problem = self.folders.overlap()
        if problem:
            raise SettingsError(problem)

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
                "DISPATCHER_FUNCTION": self.dispatcher_function}
