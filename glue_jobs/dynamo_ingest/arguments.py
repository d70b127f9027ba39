"""The job's arguments: Glue's ``--name value`` convention, parsed into a frozen dataclass.

Glue passes every argument as a string, plus reserved ones of its own (``--JOB_ID``,
``--JOB_RUN_ID``, ``--job-bookmark-option``, ``--TempDir`` …) that we ignore, exactly as
``awsglue.utils.getResolvedOptions`` does. ``dynamo-ingest run`` builds the same argv.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal, get_args

from dynamo_ingest.errors import ArgumentError

EmptyPolicy = Literal["omit", "null", "empty_string"]
WriteMode = Literal["overwrite", "insert", "merge"]
DEFAULT_LEDGER_TABLE = "dynamo-ingest-ledger"


@dataclass(frozen=True)
class JobArguments:
    """Every argument the job reads; the names are the ``--names`` of the Glue job."""

    source_path: str
    target_table: str
    partition_key: str | None = None
    sort_key: str | None = None
    catalog_database: str | None = None
    catalog_table: str | None = None
    rejects_path: str | None = None
    report_path: str | None = None
    empty_value: EmptyPolicy = "omit"
    delimiter: str | None = None
    quote_char: str | None = None
    partitions: int | None = None
    write_rate: str = "auto"
    write_share: float = 0.9
    max_retry_seconds: float = 300.0
    ledger_table: str = DEFAULT_LEDGER_TABLE
    # K acknowledged batches per partition, or auto (dynamo_ingest.pipeline.auto_checkpoint_every)
    checkpoint_every: int | Literal["auto"] = "auto"
    restart: bool = False
    source_etag: str | None = None
    # Mapping (documented in dynamo_ingest.mapping.AttributeMapping).
    partition_key_template: str | None = None
    sort_key_template: str | None = None
    rename: str | None = None
    drop_columns: str | None = None
    column_types: str | None = None
    ttl_attribute: str | None = None
    ttl_from_column: str | None = None
    ttl_seconds: int | None = None
    load_time: str | None = None
    partition_key_shards: int | None = None
    # overwrite: BatchWriteItem (a put replaces the item); insert: put only when absent;
    # merge: UpdateItem SET of the row's attributes. --version_column guards overwrite/merge.
    write_mode: WriteMode = "overwrite"
    version_column: str | None = None
    JOB_NAME: str | None = None  # Glue's reserved name

    def load_fingerprint(self) -> str:
        """A digest of the arguments that decide what is written where: checkpoints of one
        file resume only a run with the same fingerprint (another table, key or mapping must
        not skip the rows an earlier run wrote elsewhere or differently)."""
        shaping = {name: getattr(self, name) for name in _SHAPING_ARGUMENTS}
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
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or (f.name == "JOB_NAME"):
                continue
            out[f"--{f.name}"] = (("true" if value else "false") if isinstance(value, bool)
                                  else str(value))
        return out


# What the items and their destination depend on. Not: where reports and rejects go, pacing,
# retry budgets, the partition count (checkpoints keep their own) or the ledger itself.
_SHAPING_ARGUMENTS = (
    "target_table", "partition_key", "sort_key", "catalog_database", "catalog_table",
    "empty_value", "delimiter", "quote_char", "partition_key_template", "sort_key_template",
    "rename", "drop_columns", "column_types", "ttl_attribute", "ttl_from_column", "ttl_seconds",
    "load_time", "partition_key_shards", "write_mode", "version_column")


def argument_names() -> tuple[str, ...]:
    """The job's own argument names (without Glue's reserved ones), for Terraform checks."""
    return tuple(f.name for f in fields(JobArguments) if f.name != "JOB_NAME")


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise ArgumentError(f"--{name} expects true or false, found {raw!r}")


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
    missing = [n for n in ("source_path", "target_table") if not values.get(n)]
    if missing:
        raise ArgumentError(
            "missing required job argument(s): " + ", ".join(f"--{n}" for n in missing))
    typed: dict[str, object] = {}
    for f in fields(JobArguments):
        if f.name not in values:
            continue
        raw = values[f.name]
        try:
            if f.name == "checkpoint_every" and raw == "auto":
                typed[f.name] = raw
            elif f.name in ("partitions", "checkpoint_every", "ttl_seconds",
                            "partition_key_shards"):
                typed[f.name] = int(raw)
                if typed[f.name] <= 0:  # type: ignore[operator]
                    raise ValueError
            elif f.name in ("write_share", "max_retry_seconds"):
                typed[f.name] = float(raw)
                if not typed[f.name] > 0:  # type: ignore[operator]
                    raise ValueError
            elif f.name == "restart":
                typed[f.name] = _parse_bool(f.name, raw)
            else:
                typed[f.name] = raw
        except ValueError as err:
            raise ArgumentError(f"--{f.name} expects a positive number, found {raw!r}") from err
    if typed.get("empty_value", "omit") not in ("omit", "null", "empty_string"):
        raise ArgumentError(
            f"--empty_value expects omit, null or empty_string, found {typed['empty_value']!r}")
    share = typed.get("write_share", 0.9)
    if not 0 < share <= 1:  # type: ignore[operator]
        raise ArgumentError(f"--write_share expects a share in (0, 1], found {share!r}")
    rate = str(typed.get("write_rate", "auto"))
    if rate != "auto":
        try:
            if float(rate) <= 0:
                raise ValueError
        except ValueError as err:
            raise ArgumentError(
                f"--write_rate expects 'auto' or a WCU/s budget > 0, found {rate!r}") from err
    for name in ("delimiter", "quote_char"):
        if name in typed and len(str(typed[name])) != 1:
            raise ArgumentError(f"--{name} expects one character, found {typed[name]!r}")
    if bool(typed.get("catalog_database")) != bool(typed.get("catalog_table")):
        raise ArgumentError(
            "--catalog_database and --catalog_table go together: pass both or neither")
    mode = typed.get("write_mode", "overwrite")
    if mode not in get_args(WriteMode):
        raise ArgumentError(f"--write_mode expects overwrite, insert or merge, found {mode!r}")
    if mode == "insert" and typed.get("version_column"):
        raise ArgumentError("--version_column has no effect with --write_mode insert (existing "
                            "items are never replaced): drop it, or use overwrite or merge")
    arguments = JobArguments(**typed)  # type: ignore[arg-type]
    from dynamo_ingest.mapping import AttributeMapping

    AttributeMapping.from_arguments(arguments)  # raises ArgumentError on a malformed option
    return arguments
