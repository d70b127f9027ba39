"""The job's arguments, each declared once: a field of :class:`JobArguments` whose metadata
says what it accepts, its help, whether it shapes the load fingerprint, whether the trigger
passes it and which CLI commands offer it.

Glue passes every argument as a string, plus reserved ones of its own (``--JOB_ID``,
``--JOB_RUN_ID``, ``--job-bookmark-option``, ``--TempDir`` …) that we ignore, exactly as
``awsglue.utils.getResolvedOptions`` does. Everything else reads :func:`job_argument_specs`:
the Glue-style parser here, the options of ``dynamo-ingest run`` and ``estimate``
(``dynamo_ingest_cli/job_options.py``), the trigger's StartJobRun arguments, the load
fingerprint, and the tests that hold the README's argument table and Terraform's default
arguments to it.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Literal, Protocol, get_args

from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.formats import DEFAULT_MAX_EXPANSION

EmptyPolicy = Literal["omit", "null", "empty_string"]
WriteMode = Literal["overwrite", "insert", "merge"]
Engine = Literal["auto", "spark", "local"]
Command = Literal["run", "estimate"]
DEFAULT_LEDGER_TABLE = "dynamo-ingest-ledger"
# The words a boolean argument takes (Glue passes "true"/"false"; an empty value is false).
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")


class ValueRule(Protocol):
    """What one argument accepts: parses Glue's string or raises :class:`ArgumentError`."""

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""

    def parse(self, name: str, raw: str) -> object:
        """The typed value of ``--name raw``."""


def _expects(name: str, accepted: str, raw: str) -> ArgumentError:
    return ArgumentError(f"--{name} expects {accepted}, found {raw!r}")


def _number_text(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


@dataclass(frozen=True)
class Text:
    """Any text: names and paths, or a mapping option that its own parser checks."""

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "<str>"

    def parse(self, name: str, raw: str) -> str:
        """The text as given."""
        return raw


# Characters a shell, a console or a Terraform map cannot easily pass as themselves, by name.
CHARACTER_NAMES = {"tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " ",
                   "colon": ":", "ctrl-a": "\x01"}
# One escape typed literally, as Python and Glue's docs write them: \t, \\, \xHH, \uHHHH.
_ESCAPE = re.compile(r"\\(?:(t)|(\\)|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")


@dataclass(frozen=True)
class OneCharacter:
    """A single character (a CSV delimiter or quote): itself, a name such as ``tab`` or
    ``pipe``, or one escape typed literally (``\\t``, ``\\x1f``, ``\\u0001``, ``\\\\``), because
    ``--delimiter '\\t'`` reaches the job as a backslash and a ``t``."""

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "<char>"

    def parse(self, name: str, raw: str) -> str:
        """The character, or :class:`ArgumentError` showing the value as typed."""
        if len(raw) == 1:
            return raw
        named = CHARACTER_NAMES.get(raw.strip().lower())
        if named is not None:
            return named
        escape = _ESCAPE.fullmatch(raw)
        if escape is not None:
            tab, backslash, byte, code = escape.groups()
            return "\t" if tab else backslash or chr(int(byte or code, 16))
        names = ", ".join(CHARACTER_NAMES)
        # Shown as typed: repr() would double each backslash of a '\t' the user never doubled.
        raise ArgumentError(
            f"--{name} expects one character, a name ({names}) or one escape (\\t, \\xHH, "
            f"\\uHHHH, \\\\), found '{raw}'")


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of words."""

    options: tuple[str, ...]

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "|".join(self.options)

    def parse(self, name: str, raw: str) -> str:
        """The word, or :class:`ArgumentError` listing the accepted ones."""
        if raw not in self.options:
            raise _expects(name, ", ".join(self.options[:-1]) + f" or {self.options[-1]}", raw)
        return raw


@dataclass(frozen=True)
class EncodingName:
    """A text encoding of :data:`dynamo_ingest.core.formats.SUPPORTED_ENCODINGS` (or an alias),
    kept normalised (``latin-1`` → ``iso8859-1``)."""

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "<encoding>"

    def parse(self, name: str, raw: str) -> str:
        """The normalised name, or :class:`ArgumentError` listing the supported ones."""
        from dynamo_ingest.core.formats import UnknownEncodingError, normalise_encoding

        try:
            return normalise_encoding(raw)
        except UnknownEncodingError as err:
            raise ArgumentError(f"--{name} {err}") from None


@dataclass(frozen=True)
class Flag:
    """A boolean, in Glue's form (``true``/``false``; the CLI also takes the bare flag)."""

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "true|false"

    def parse(self, name: str, raw: str) -> bool:
        """True or False, or :class:`ArgumentError`."""
        lowered = raw.strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in (*FALSE_WORDS, ""):
            return False
        raise _expects(name, "true or false", raw)


@dataclass(frozen=True)
class WholeNumber:
    """A whole number in ``[minimum, maximum]``."""

    what: str
    minimum: int
    maximum: int

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "<int>"

    @property
    def accepted(self) -> str:
        """The accepted values, as an error message names them."""
        return f"{self.what}: a whole number from {self.minimum:,} to {self.maximum:,}"

    def parse(self, name: str, raw: str) -> int:
        """The number, or :class:`ArgumentError` naming the range."""
        try:
            value = int(raw.strip())
        except ValueError:
            raise _expects(name, self.accepted, raw) from None
        if not self.minimum <= value <= self.maximum:
            raise _expects(name, self.accepted, raw)
        return value


@dataclass(frozen=True)
class Number:
    """A finite number in ``(minimum, maximum]`` or ``[minimum, maximum]``: never NaN or
    infinite, which would pass a ``> 0`` check and fail far away (inside Spark, or as
    ``Infinity`` in a JSON report)."""

    what: str
    minimum: float
    maximum: float
    minimum_included: bool = True

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "<number>"

    @property
    def accepted(self) -> str:
        """The accepted values, as an error message names them."""
        low = ">=" if self.minimum_included else ">"
        return (f"{self.what}: a number {low} {_number_text(self.minimum)} and <= "
                f"{_number_text(self.maximum)}")

    def parse(self, name: str, raw: str) -> float:
        """The number, or :class:`ArgumentError` naming the range."""
        try:
            value = float(raw)
        except ValueError:
            raise _expects(name, self.accepted, raw) from None
        low_ok = value >= self.minimum if self.minimum_included else value > self.minimum
        if not (math.isfinite(value) and low_ok and value <= self.maximum):
            raise _expects(name, self.accepted, raw)
        return value


@dataclass(frozen=True)
class WriteRate:
    """``auto``, or a budget in WCU/s (kept as the text given; the job reads it as a float)."""

    budget: Number = Number("a write budget in WCU/s (1 is DynamoDB's smallest unit)",
                            1, 10_000_000)

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "auto|<WCU/s>"

    def parse(self, name: str, raw: str) -> str:
        """``auto`` or the budget's text, or :class:`ArgumentError`."""
        if raw.strip() == "auto":
            return "auto"
        try:
            self.budget.parse(name, raw)
        except ArgumentError:
            raise _expects(name, f"auto or {self.budget.accepted}", raw) from None
        return raw


@dataclass(frozen=True)
class AutoOrWholeNumber:
    """``auto`` (the job decides from the file), or a whole number of ``number``'s range."""

    number: WholeNumber

    @property
    def metavar(self) -> str:
        """The value's placeholder in ``--help``."""
        return "auto|<int>"

    def parse(self, name: str, raw: str) -> int | str:
        """``auto`` or the number, or :class:`ArgumentError` naming both."""
        if raw.strip() == "auto":
            return "auto"
        try:
            return self.number.parse(name, raw)
        except ArgumentError:
            raise _expects(name, f"auto or {self.number.accepted}", raw) from None


@dataclass(frozen=True)
class Declared:
    """What a :class:`JobArguments` field's metadata says about its argument."""

    rule: ValueRule
    help: str
    shapes_load: bool
    passed_by_trigger: bool
    commands: frozenset[Command]


_DECLARED = "dynamo_ingest.argument"
RUN: frozenset[Command] = frozenset({"run"})
RUN_AND_ESTIMATE: frozenset[Command] = frozenset({"run", "estimate"})


def _about(rule: ValueRule, help_text: str, *, shapes_load: bool = False,
           passed_by_trigger: bool = False,
           commands: frozenset[Command] = RUN) -> dict[str, Declared]:
    """A field's metadata: the one declaration of its argument."""
    return {_DECLARED: Declared(rule, help_text, shapes_load, passed_by_trigger, commands)}


_TEXT = Text()


@dataclass(frozen=True)
class JobArguments:
    """Every argument the job reads; the names are the ``--names`` of the Glue job."""

    source_path: str = field(metadata=_about(
        _TEXT, "CSV to load: s3://bucket/key or a local path", passed_by_trigger=True))
    target_table: str = field(metadata=_about(
        _TEXT, "existing DynamoDB table", shapes_load=True, passed_by_trigger=True))
    partition_key: str | None = field(default=None, metadata=_about(
        _TEXT, "the table's partition key (checked against DescribeTable)", shapes_load=True,
        passed_by_trigger=True))
    sort_key: str | None = field(default=None, metadata=_about(
        _TEXT, "the table's sort key (checked against DescribeTable)", shapes_load=True,
        passed_by_trigger=True))
    catalog_database: str | None = field(default=None, metadata=_about(
        _TEXT, "Glue database of the crawled table", shapes_load=True, passed_by_trigger=True,
        commands=RUN_AND_ESTIMATE))
    catalog_table: str | None = field(default=None, metadata=_about(
        _TEXT, "Glue table giving columns, types, delimiter, quote", shapes_load=True,
        passed_by_trigger=True, commands=RUN_AND_ESTIMATE))
    rejects_path: str | None = field(default=None, metadata=_about(
        _TEXT, "rejects CSV (default: error/<path below incoming/> for S3, rejects/ "
        "beside a local file)", passed_by_trigger=True))
    # The bucket's folders, for the default rejects location of an s3:// source (Terraform
    # passes its own; dynamo_ingest.control.locations.BucketFolders holds the defaults).
    incoming_prefix: str | None = field(default=None, metadata=_about(
        _TEXT, "the bucket's folder of files to load (default incoming/): a manual run's "
        "rejects never go there"))
    error_prefix: str | None = field(default=None, metadata=_about(
        _TEXT, "the bucket's folder of failed files and rejects (default error/)"))
    report_path: str | None = field(default=None, metadata=_about(
        _TEXT, "also write the JSON run report here (local path or s3://)"))
    empty_value: EmptyPolicy = field(default="omit", metadata=_about(
        Choice(get_args(EmptyPolicy)), "an empty field: omit the attribute, store NULL, or "
        "store an empty string", shapes_load=True, commands=RUN_AND_ESTIMATE))
    delimiter: str | None = field(default=None, metadata=_about(
        OneCharacter(), "field delimiter (default: catalog or detected)", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    quote_char: str | None = field(default=None, metadata=_about(
        OneCharacter(), "quote character (default: catalog or \")", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    # None: the catalog table's serialization.encoding, else UTF-8 (a UTF-16 BOM is seen).
    encoding: str | None = field(default=None, metadata=_about(
        EncodingName(), "the file's text encoding: utf-8, utf-16 (BOM), cp1252, latin-1 … "
        "(default: the catalog's serialization.encoding, else utf-8)", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    # The bounds of decompression (dynamo_ingest.engine.source.SourceLimits).
    max_expansion: float = field(default=DEFAULT_MAX_EXPANSION, metadata=_about(
        Number("a ratio of text bytes to stored bytes", 1, 1_000_000),
        "fail a compressed file that expands more than this many times its size "
        "(a decompression bomb)", commands=RUN_AND_ESTIMATE))
    max_uncompressed_bytes: int | None = field(default=None, metadata=_about(
        WholeNumber("a count of bytes", 1, 1 << 50),
        "fail a compressed file whose text is larger than this (default: no cap but "
        "max_expansion)", commands=RUN_AND_ESTIMATE))
    partitions: int | None = field(default=None, metadata=_about(
        WholeNumber("a count of write partitions", 1, 100_000),
        "write partitions (fixed per file for resume; default from cores and file size)"))
    write_rate: str = field(default="auto", metadata=_about(
        WriteRate(), "WCU/s for the whole job, or auto (a share of the table's capacity)",
        commands=RUN_AND_ESTIMATE))
    write_share: float = field(default=0.9, metadata=_about(
        Number("a share of the table's capacity", 0, 1, minimum_included=False),
        "share of the table's capacity that write_rate auto uses", commands=RUN_AND_ESTIMATE))
    max_retry_seconds: float = field(default=300.0, metadata=_about(
        Number("seconds", 0, 86_400, minimum_included=False),
        "retry budget of one batch (throttling, unprocessed items, 5xx, connection errors)"))
    ledger_table: str = field(default=DEFAULT_LEDGER_TABLE, metadata=_about(
        _TEXT, "control table for runs and checkpoints", passed_by_trigger=True))
    # auto: engine.pipeline.auto_checkpoint_every (a kill rewrites <= 1 % of the rows).
    checkpoint_every: int | Literal["auto"] = field(default="auto", metadata=_about(
        AutoOrWholeNumber(WholeNumber("a count of batches", 1, 1_000_000)),
        "checkpoint every K acknowledged batches per partition, or auto (a kill rewrites at "
        "most 1 % of the rows, and at most about 5 s of writes)"))
    restart: bool = field(default=False, metadata=_about(
        Flag(), "ignore the checkpoints of an unfinished earlier run and load from the start"))
    source_etag: str | None = field(default=None, metadata=_about(
        _TEXT, "fail if the S3 object's ETag differs (the trigger passes it)",
        passed_by_trigger=True))
    # Mapping (documented in dynamo_ingest.core.mapping.AttributeMapping).
    partition_key_template: str | None = field(default=None, metadata=_about(
        _TEXT, "partition key from columns, e.g. {batchId}#{email}", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    sort_key_template: str | None = field(default=None, metadata=_about(
        _TEXT, "sort key from columns, e.g. {date}#{orderId}", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    rename: str | None = field(default=None, metadata=_about(
        _TEXT, "store columns under other names: old:new,old2:new2", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    drop_columns: str | None = field(default=None, metadata=_about(
        _TEXT, "columns not stored: a,b", shapes_load=True, commands=RUN_AND_ESTIMATE))
    column_types: str | None = field(default=None, metadata=_about(
        _TEXT, "type overrides: col:S,col2:N,col3:BOOL,col4:JSON", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    ttl_attribute: str | None = field(default=None, metadata=_about(
        _TEXT, "TTL attribute (epoch seconds)", shapes_load=True, commands=RUN_AND_ESTIMATE))
    ttl_from_column: str | None = field(default=None, metadata=_about(
        _TEXT, "column holding the expiry (epoch seconds or ISO 8601)", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    ttl_seconds: int | None = field(default=None, metadata=_about(
        WholeNumber("a lifetime in seconds (at most 100 years)", 1, 100 * 365 * 86_400),
        "expire this many seconds after the load time", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    load_time: str | None = field(default=None, metadata=_about(
        _TEXT, "the 'now' of ttl_seconds: epoch seconds or ISO 8601 (default: now)",
        shapes_load=True, passed_by_trigger=True, commands=RUN_AND_ESTIMATE))
    partition_key_shards: int | None = field(default=None, metadata=_about(
        WholeNumber("a count of shards", 1, 10_000),
        "append #0…#N-1 (sort key hash) to the partition key", shapes_load=True,
        commands=RUN_AND_ESTIMATE))
    write_mode: WriteMode = field(default="overwrite", metadata=_about(
        Choice(get_args(WriteMode)), "overwrite: BatchWriteItem, a put replaces the item; "
        "insert: put only when absent; merge: UpdateItem SET of the row's attributes",
        shapes_load=True, commands=RUN_AND_ESTIMATE))
    version_column: str | None = field(default=None, metadata=_about(
        _TEXT, "with overwrite or merge: write only when not older than the stored version",
        shapes_load=True, commands=RUN_AND_ESTIMATE))
    engine: Engine = field(default="auto", metadata=_about(
        Choice(get_args(Engine)), "auto: local when the predicted load is under the "
        "small-file threshold (core/engine_choice.py), else spark; spark: the Glue/Spark job; "
        "local: in this process, no JVM"))
    JOB_NAME: str | None = None  # Glue's reserved name, not one of ours

    def load_fingerprint(self) -> str:
        """A digest of the arguments that decide what is written where: checkpoints of one
        file resume only a run with the same fingerprint (another table, key or mapping must
        not skip the rows an earlier run wrote elsewhere or differently)."""
        shaping = {s.name: getattr(self, s.name) for s in job_argument_specs() if s.shapes_load}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]

    def to_argv(self) -> list[str]:
        """The ``--name value`` list that reproduces these arguments (for StartJobRun, CLI)."""
        argv: list[str] = []
        for name, value in self.to_glue_arguments().items():
            argv += [name, value]
        return argv

    def to_glue_arguments(self) -> dict[str, str]:
        """The ``Arguments`` map of ``glue:StartJobRun`` (only values that are set)."""
        out: dict[str, str] = {}
        for spec in job_argument_specs():
            value = getattr(self, spec.name)
            if value is not None:
                out[spec.option] = glue_text(value)
        return out

    def trigger_arguments(self) -> dict[str, str]:
        """The part of :meth:`to_glue_arguments` the trigger passes: what it decides per file.
        The rest stays with the job's DefaultArguments, which run Arguments would override."""
        passed = {s.option for s in job_argument_specs() if s.passed_by_trigger}
        return {k: v for k, v in self.to_glue_arguments().items() if k in passed}


@dataclass(frozen=True)
class ArgumentSpec:
    """One job argument as the registry holds it (declared on its :class:`JobArguments` field)."""

    name: str
    default: object  # None: not set unless given (required ones have none either)
    required: bool
    rule: ValueRule
    help: str
    shapes_load: bool
    passed_by_trigger: bool
    commands: frozenset[Command]

    @property
    def option(self) -> str:
        """The ``--name`` Glue and the CLI use."""
        return f"--{self.name}"

    def parse(self, raw: str) -> object:
        """The typed value of Glue's string, or :class:`ArgumentError` naming the argument."""
        return self.rule.parse(self.name, raw)


@functools.cache
def job_argument_specs() -> tuple[ArgumentSpec, ...]:
    """The registry: every argument of ours in declaration order (not Glue's reserved ones)."""
    specs: list[ArgumentSpec] = []
    for f in fields(JobArguments):
        declared = f.metadata.get(_DECLARED)
        if declared is None:
            continue
        assert isinstance(declared, Declared)
        required = f.default is MISSING
        specs.append(ArgumentSpec(
            name=f.name, default=None if required else f.default, required=required,
            rule=declared.rule, help=declared.help, shapes_load=declared.shapes_load,
            passed_by_trigger=declared.passed_by_trigger, commands=declared.commands))
    return tuple(specs)


def argument_names() -> tuple[str, ...]:
    """The job's own argument names (without Glue's reserved ones)."""
    return tuple(spec.name for spec in job_argument_specs())


def glue_text(value: object) -> str:
    """A typed value as Glue passes it: a string, booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_job_arguments(argv: Sequence[str]) -> JobArguments:
    """Parse ``sys.argv[1:]``-style arguments the way ``getResolvedOptions`` would.

    Unknown ``--options`` (Glue's own) are ignored; a missing required one or a value of the
    wrong type raises :class:`ArgumentError` naming the argument.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for f in fields(JobArguments):
        parser.add_argument(f"--{f.name}", dest=f.name, default=None)
    known, _glue_reserved = parser.parse_known_args(list(argv))
    return job_arguments_from_mapping({k: v for k, v in vars(known).items() if v is not None})


def job_arguments_from_mapping(values: Mapping[str, str]) -> JobArguments:
    """Type-check string values (as Glue hands them over) into :class:`JobArguments`."""
    specs = job_argument_specs()
    missing = [s.option for s in specs if s.required and not values.get(s.name)]
    if missing:
        raise ArgumentError("missing required job argument(s): " + ", ".join(missing))
    typed: dict[str, object] = {s.name: s.parse(values[s.name]) for s in specs
                                if s.name in values}
    if values.get("JOB_NAME") is not None:
        typed["JOB_NAME"] = values["JOB_NAME"]
    _check_combinations(typed)
    arguments = JobArguments(**typed)  # type: ignore[arg-type]
    from dynamo_ingest.core.mapping import AttributeMapping

    AttributeMapping.from_arguments(arguments)  # raises ArgumentError on a malformed option
    return arguments


def _check_combinations(typed: Mapping[str, object]) -> None:
    """Arguments that are valid alone but not together."""
    if bool(typed.get("catalog_database")) != bool(typed.get("catalog_table")):
        raise ArgumentError(
            "--catalog_database and --catalog_table go together: pass both or neither")
    if typed.get("write_mode") == "insert" and typed.get("version_column"):
        raise ArgumentError("--version_column has no effect with --write_mode insert (existing "
                            "items are never replaced): drop it, or use overwrite or merge")
