"""Infer a CSV source's layout the way AWS Glue's CSV classifier does and register the catalog
table the way our crawler (``crawler.json``, ``csv_classifier.json``) would.

Rules followed (AWS Glue Developer Guide, "Built-in classifiers" and "Writing custom
classifiers", CSV sections):

- delimiters tried: comma, pipe, tab, semicolon and Ctrl-A (``\\u0001``);
- a CSV needs a data row, and at least two columns unless ``allow_single_column`` is true
  (ours is: a key-only file is a table too); a first line that no candidate splits is then
  one column;
- a header value parses as STRING, is shorter than 150 characters (except the last column),
  and meets the Glue column-name pattern (1-255 UTF-8 bytes, no control character but tab);
  an unnamed last column (a delimiter ending every line) is dropped, as the job drops it;
- the built-in classifier also wants the header "sufficiently different" from the data (one
  column typed other than STRING); our custom classifier says ``contains_header: PRESENT``,
  so that rule applies only when the file falls to the built-in classifier (a delimiter other
  than the custom classifier's);
- column types are BIGINT, DOUBLE, BOOLEAN or STRING; empty values are ignored, BIGINT and
  DOUBLE together widen to DOUBLE, any other mix is STRING; values are not trimmed
  (``disable_value_trimming``).

One deliberate difference: Glue types ``02869`` BIGINT, but DynamoDB would store that number
as 2869. Here a column is numeric only if DynamoDB would keep every sampled value exactly as
written (no leading zeros, ``+`` sign, trailing fraction zeros or exponent); otherwise it is
STRING, so a zip code or a part number keeps its text. ``--column_types col:N`` still loads
such a column as numbers, as DynamoDB normalises them.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from itertools import chain, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from dynamo_ingest.control.storage import is_s3, split_s3
from dynamo_ingest.core.catalog import Column, CsvSchema, glue_table_input
from dynamo_ingest.core.errors import CatalogError, FileLayoutError, SourceError
from dynamo_ingest.core.formats import UTF8, value_encoding
from dynamo_ingest.engine.items import canonical_number, number_kept_as_written
from dynamo_ingest.engine.layout import (
    CANDIDATE_DELIMITERS,
    TRAILING_DELIMITER_NOTE,
    allow_large_csv_fields,
    ends_with_unnamed_column,
    refuse_wrong_delimiter,
)
from dynamo_ingest.engine.records import DEFAULT_RECORD_LIMIT, describe_size
from dynamo_ingest.engine.source import (
    SourceLimits,
    open_source,
    open_stored,
    read_prefix,
    source_format,
    stored_format,
)

if TYPE_CHECKING:
    from mypy_boto3_glue import GlueClient
    from mypy_boto3_glue.type_defs import TableInputTypeDef
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

# The crawler, like us, reads only the start of an object; a few MB hold thousands of rows.
S3_SAMPLE_BYTES = 4 * 1024 * 1024
DETECTION_CHARS = 64 * 1024
HEADER_VALUE_LIMIT = 150
COLUMN_NAME_MAX_BYTES = 255
INT64_DIGITS = 19
DEFAULT_SAMPLE_ROWS = 1000

_BIGINT = re.compile(r"[+-]?[0-9]+")
_DOUBLE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_GLUE_NAME = re.compile("[\t\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]+")
_BOOLEANS = frozenset({"true", "false"})
# ``surrogateescape`` decodes each byte that is not UTF-8 to U+DC80-U+DCFF; valid UTF-8 never
# decodes to a lone surrogate, so one of these marks undecodable bytes.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def value_type(value: str) -> str:
    """The Glue type one non-empty CSV value parses as: bigint, double, boolean or string."""
    if _BIGINT.fullmatch(value):
        digits = value.lstrip("+-").lstrip("0")
        # Beyond 64 bits Glue's integer parse fails and the value is read as a double.
        if len(digits) > INT64_DIGITS or not -(2**63) <= int(value) < 2**63:
            return "double"
        return "bigint"
    if _DOUBLE.fullmatch(value):
        return "double"
    if value.lower() in _BOOLEANS:
        return "boolean"
    return "string"


def widen(current: str | None, found: str) -> str:
    """The column type once ``found`` joins values typed ``current`` (None: none seen yet)."""
    if current is None or current == found:
        return found
    if {current, found} == {"bigint", "double"}:
        return "double"
    return "string"


@dataclass
class _ColumnStats:
    """What the sample showed about one column."""

    type: str | None = None
    # Glue's type and a value it would type so, had DynamoDB kept that number as written.
    glue_type: str | None = None
    changed: list[str] = field(default_factory=list)

    def add(self, value: str) -> None:
        found = value_type(value)
        self.glue_type = widen(self.glue_type, found)
        if found in ("bigint", "double") and not number_kept_as_written(value):
            found = "string"
            self.changed.append(value)
        self.type = widen(self.type, found)


def infer_schema(source: BinaryIO | Path, *, delimiter: str | None = None, quote_char: str = '"',
                 sample_rows: int = DEFAULT_SAMPLE_ROWS, require_rows: bool = True,
                 encoding: str | None = None, name: str | None = None,
                 limits: SourceLimits = SourceLimits()) -> CsvSchema:
    """Infer columns, types and dialect from the header and the first ``sample_rows`` rows.

    A path is read through :func:`dynamo_ingest.engine.source.open_source` (decompressed,
    UTF-16 as UTF-8), a stream as the text it is; ``encoding`` is the file's (None: UTF-8,
    or UTF-16 by its BOM) and is recorded in the schema when it is not UTF-8; ``name`` is the
    file as messages call it.

    Reads only what the sample needs. Raises :class:`FileLayoutError` when the file has no
    header row the job could use, or when no candidate delimiter splits it into columns. A
    file with a header and no data rows is an error for the catalog (nothing to type) unless
    ``require_rows`` is False: the job then reads its header as text columns and loads nothing.
    """
    if isinstance(source, Path):
        shown = name or str(source)
        chosen = source_format(str(source), encoding=encoding, name=shown).encoding
        with open_source(str(source), encoding=chosen, name=shown, limits=limits) as handle:
            schema = _infer(handle, shown, delimiter, quote_char, sample_rows, complete=True,
                            require_rows=require_rows, encoding=value_encoding(chosen))
        return _with_encoding(schema, chosen)
    chosen = encoding or UTF8
    schema = _infer(source, name or "the source", delimiter, quote_char, sample_rows,
                    complete=True, require_rows=require_rows, encoding=value_encoding(chosen))
    return _with_encoding(schema, chosen)


def _with_encoding(schema: CsvSchema, encoding: str) -> CsvSchema:
    """The schema with the file's encoding recorded (UTF-8, the default, is not)."""
    return schema if encoding == UTF8 else replace(schema, encoding=encoding)


def _infer(stream: BinaryIO, name: str, delimiter: str | None, quote_char: str, sample_rows: int,
           *, complete: bool, require_rows: bool = True, encoding: str = UTF8) -> CsvSchema:
    """``infer_schema`` over the text's byte stream, its values in ``encoding``; ``complete``
    is False when the stream is a cut-off prefix of the object (its last record may be
    partial and is dropped)."""
    if sample_rows < 1:
        raise ValueError(f"sample_rows must be at least 1, found {sample_rows}")
    allow_large_csv_fields()
    # Lenient decoding: one record with invalid UTF-8 is the job's to reject, not a reason to
    # fail the whole file; undecodable bytes come through as lone surrogates we can spot.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig" if encoding == UTF8 else encoding,
                            errors="surrogateescape", newline="")
    try:
        source_lines = _bounded_lines(text, name)
        prefix, at_end = _read_prefix(source_lines)
        if not "".join(prefix).strip():
            raise FileLayoutError(f"{name} is empty: expected a header row and data rows")
        # Checked before detection so a bad header is reported as such, not as a delimiter issue.
        _refuse_undecodable_header(name, prefix[0], encoding)
        if delimiter is None:
            delimiter = _detect_delimiter(name, prefix, quote_char,
                                          complete=complete and at_end)
        lines = chain(prefix, source_lines)
        reader = csv.reader(lines, delimiter=delimiter, quotechar=quote_char, strict=False)
        header = next(reader)
        refuse_wrong_delimiter(name, header, prefix[0], delimiter, quote_char,
                               ", or leave --delimiter out to detect it")
        rows = [row for row in islice(reader, sample_rows + 1) if row]
    except csv.Error as err:
        raise FileLayoutError(f"{name} is not CSV the classifier can parse ({err})") from err
    finally:
        text.detach()  # The caller owns the stream.
    # A quoted header name may span lines beyond the first.
    _refuse_undecodable_header(name, delimiter.join(header), encoding)
    if len(rows) > sample_rows:
        rows = rows[:sample_rows]
    elif not complete and rows:
        rows = rows[:-1]
    decodable = [row for row in rows if not any(_UNDECODABLE.search(value) for value in row)]
    left_out = len(rows) - len(decodable)
    if left_out:
        logger.warning("%s: %d of %d sample data row(s) hold bytes that are not %s; they are "
                       "left out of type inference (the job rejects such records)",
                       name, left_out, len(rows), "UTF-8" if encoding == UTF8 else encoding)
    if not decodable and require_rows:
        why = (f" ({left_out} data row(s) in the sample hold bytes that are not UTF-8, which the "
               "job rejects: save the file as UTF-8)" if left_out else "")
        raise FileLayoutError(f"{name} has a first row but no data rows{why}: the classifier "
                              "needs data rows to infer column types; add representative rows")
    return _schema(name, header, decodable, delimiter, quote_char)


def _refuse_undecodable_header(name: str, header: str, encoding: str = UTF8) -> None:
    """Fail when the header holds bytes that are not UTF-8 (it names every column, so unlike a
    data row it cannot be left out)."""
    bad = [ord(char) - 0xDC00 for char in _UNDECODABLE.findall(header)]
    if not bad:
        return
    shown = header.encode("utf-8", "surrogateescape").decode("utf-8", "replace").rstrip()[:80]
    listed = " ".join(f"0x{byte:02X}" for byte in bad[:8]) + (" ..." if len(bad) > 8 else "")
    called = "UTF-8" if encoding == UTF8 else encoding
    raise FileLayoutError(
        f"{name} is not {called} text: its header row {shown!r} holds byte(s) {listed} that "
        f"do not decode as {called}; the header names the columns, so it cannot be left out "
        "like a data row: pass --encoding with the file's encoding (cp1252, latin-1, utf-16 "
        "…), or save the file as UTF-8 (with or without BOM)")


def _bounded_lines(text: io.TextIOBase, name: str) -> Iterator[str]:
    """The stream's lines, ending before one longer than the job's record limit: such a line
    (a runaway record with no line break) is never held whole; the job rejects it."""
    while line := text.readline(DEFAULT_RECORD_LIMIT + 1):
        if len(line) > DEFAULT_RECORD_LIMIT:
            logger.warning("%s: the sample ends before a line over %s", name,
                        describe_size(DEFAULT_RECORD_LIMIT))
            return
        yield line


def _read_prefix(source_lines: Iterator[str]) -> tuple[list[str], bool]:
    """Whole lines from the start, about :data:`DETECTION_CHARS` of them; True at end of file."""
    lines: list[str] = []
    size = 0
    while size < DETECTION_CHARS:
        line = next(source_lines, "")
        if not line:
            return lines, True
        lines.append(line)
        size += len(line)
    return lines, False


def _detect_delimiter(name: str, lines: Sequence[str], quote_char: str, *,
                      complete: bool) -> str:
    """The candidate that splits the first row into 2+ columns and the most rows alike; when
    none splits it, the file is one column (read with the classifier's delimiter)."""
    best: tuple[tuple[float, int], str] | None = None
    for candidate in CANDIDATE_DELIMITERS:
        if candidate == quote_char:
            continue
        try:
            rows = [r for r in csv.reader(lines, delimiter=candidate, quotechar=quote_char) if r]
        except csv.Error:
            continue
        if not complete and len(rows) > 1:
            rows = rows[:-1]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        score = (sum(len(r) == width for r in rows) / len(rows), width)
        if best is None or score > best[0]:  # ties keep the classifier's order
            best = (score, candidate)
    if best is not None:
        return best[1]
    if not allow_single_column():
        raise FileLayoutError(
            f"{name}: no delimiter splits the first row {lines[0].rstrip()[:80]!r} into two or "
            "more columns (tried comma, pipe, tab, semicolon, Ctrl-A); the classifier needs at "
            "least two columns: pass the delimiter if the file uses another one")
    logger.info("%s: no candidate delimiter splits the first row %r: read as a one-column file",
                name, lines[0].rstrip()[:80])
    return classifier_delimiter()


def _schema(name: str, header: list[str], rows: list[list[str]], delimiter: str,
            quote_char: str) -> CsvSchema:
    """Check the header against the classifier's rules and type every column."""
    trailing = ends_with_unnamed_column(header)
    if trailing:
        logger.info("%s: %s", name, TRAILING_DELIMITER_NOTE)
    names = header[:-1] if trailing else header
    width = len(names)
    stats = [_ColumnStats() for _ in names]
    for row in rows:
        for column, value in zip(stats, row[:width], strict=False):
            if value != "":
                column.add(value)
    types = [s.type or "string" for s in stats]
    # With no data rows (a header-only file the job loads as nothing) there are no types to
    # tell the header from the data by. Glue's own types decide, as Glue's classifier does:
    # a zip code column tells a header from data even though we type it string.
    problems = _header_problems(names, [s.glue_type or "string" for s in stats],
                                built_in=delimiter != classifier_delimiter() and bool(rows))
    if problems:
        raise FileLayoutError(
            f"{name}: no header row detected ({'; '.join(problems)}). The job needs a header "
            "row because it maps header names to DynamoDB attribute names: add one")
    _refuse_duplicates(name, names)
    for column_name, column in zip(names, stats, strict=True):
        _say_why_text(column_name, column)
    origin = f"the crawler's sample of the first {len(rows):,} rows"
    return CsvSchema(tuple(Column(n, t, origin) for n, t in zip(names, types, strict=True)),
                     delimiter, quote_char, True, trailing_delimiter=trailing)


def _header_problems(names: Sequence[str], types: Sequence[str], *, built_in: bool) -> list[str]:
    """Why the first row cannot be a header under the classifier's rules (empty: it can)."""
    if len(names) < 2 and not allow_single_column():
        return [f"found {len(names)} column(s) {list(names)}; the classifier needs at least two"]
    problems = []
    for position, value in enumerate(names, start=1):
        if value_type(value) != "string":
            problems.append(f"column {position} value {value!r} parses as "
                            f"{value_type(value).upper()}, not STRING")
        elif position < len(names) and len(value) >= HEADER_VALUE_LIMIT:
            problems.append(f"column {position} value has {len(value)} characters (a header "
                            f"name has fewer than {HEADER_VALUE_LIMIT})")
        elif not _GLUE_NAME.fullmatch(value) or len(value.encode()) > COLUMN_NAME_MAX_BYTES:
            problems.append(f"column {position} value {value!r} is not a valid Glue column "
                            f"name (1-{COLUMN_NAME_MAX_BYTES} bytes, no control characters)")
    # The built-in classifier never takes one column, so that rule has nothing to say there.
    if not problems and built_in and len(names) > 1 and all(t == "string" for t in types):
        problems.append(
            "every column is STRING, so the built-in classifier, which handles delimiters other "
            "than the custom classifier's, cannot tell the first row from the data")
    return problems


def _refuse_duplicates(name: str, names: Sequence[str]) -> None:
    """The catalog lower-cases names, so two names equal but for case would collide."""
    seen: dict[str, str] = {}
    for column in names:
        if column.lower() in seen:
            raise FileLayoutError(
                f"{name}: header names {seen[column.lower()]!r} and {column!r} are the same "
                "column to the catalog (it lower-cases names): rename one")
        seen[column.lower()] = column


def _say_why_text(column_name: str, column: _ColumnStats) -> None:
    """Say when a column Glue would type as a number is typed string to keep its text."""
    if column.changed and column.glue_type in ("bigint", "double"):
        stored = canonical_number(column.changed[0])
        logger.info(
            "column %r is typed string, not %s as Glue's classifier would type it: DynamoDB "
            "would store values such as %r as %s, not as written; `--column_types %s:N` loads "
            "the column as numbers as DynamoDB normalises them",
            column_name, column.glue_type, column.changed[0],
            "a number it cannot hold" if stored is None else stored, column_name)


def register_table(glue: GlueClient, database: str, table: str, schema: CsvSchema,
                   location: str) -> None:
    """Create the database if missing, then create the table or replace its definition
    (the crawler's ``UPDATE_IN_DATABASE``)."""
    from botocore.exceptions import ClientError

    table_input = cast("TableInputTypeDef", glue_table_input(table, schema, location))
    try:
        glue.create_database(DatabaseInput={"Name": database})
    except ClientError as err:
        if _code(err) != "AlreadyExistsException":
            raise CatalogError(f"cannot create catalog database {database!r} "
                               f"({_code(err)}): check glue:CreateDatabase access") from err
    try:
        glue.create_table(DatabaseName=database, TableInput=table_input)
        return
    except ClientError as err:
        if _code(err) != "AlreadyExistsException":
            raise CatalogError(f"cannot create catalog table {database}.{table} "
                               f"({_code(err)}): check glue:CreateTable access") from err
    try:
        glue.update_table(DatabaseName=database, TableInput=table_input)
    except ClientError as err:
        raise CatalogError(f"cannot update catalog table {database}.{table} ({_code(err)}): "
                           "check glue:UpdateTable access") from err


def crawl(glue: GlueClient, s3: S3Client | None, source: str, database: str,
          table: str, encoding: str | None = None) -> CsvSchema:
    """Infer the schema of one CSV object (``s3://`` or a local path) and register it."""
    if is_s3(source):
        if s3 is None:
            raise CatalogError(f"{source} is in S3 but no S3 client was given")
        bucket, key = split_s3(source)
        body, complete, chosen = _s3_sample(s3, source, encoding)
        schema = _with_encoding(_infer(io.BytesIO(body), source, None, '"',
                                       DEFAULT_SAMPLE_ROWS, complete=complete,
                                       encoding=value_encoding(chosen)), chosen)
        folder = key.rpartition("/")[0]
        location = f"s3://{bucket}/{folder}/" if folder else f"s3://{bucket}/"
    else:
        path = Path(source)
        schema = infer_schema(path, encoding=encoding)
        location = path.resolve().parent.as_uri() + "/"
    register_table(glue, database, table, schema, location)
    logger.info("registered %s.%s from %s: %s", database, table, source,
                ", ".join(f"{c.name} {c.type}" for c in schema.columns))
    return schema


def _s3_sample(s3: S3Client, source: str, encoding: str | None) -> tuple[bytes, bool, str]:
    """The first :data:`S3_SAMPLE_BYTES` of the object's text, from a ranged GET of as many
    stored bytes (decompressed when compressed), cut after its last whole line; True when that
    is the whole text; the encoding read."""
    from botocore.exceptions import ClientError

    bucket, key = split_s3(source)
    try:
        response = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{S3_SAMPLE_BYTES - 1}")
    except ClientError as err:
        if _code(err) == "InvalidRange":  # S3 answers a range on an empty object with 416
            return b"", True, encoding or UTF8
        raise SourceError(f"cannot read {source} ({_code(err)}): check the key "
                          "and s3:GetObject access") from err
    stored = response["Body"].read()
    total = int(response.get("ContentRange", f"/{len(stored)}").rpartition("/")[2])
    chosen = stored_format(io.BytesIO(stored), source, encoding).encoding
    with open_stored(io.BytesIO(stored), total, source, encoding=chosen,
                     prefix_only=len(stored) < total) as stream:
        body, complete = read_prefix(stream, S3_SAMPLE_BYTES)
    complete = complete and len(stored) >= total
    if complete:
        return body, True, chosen
    cut = body.rfind(b"\n")
    if cut < 0:
        raise FileLayoutError(f"{source}: no line ends in the first {len(body)} bytes; "
                              "expected a header row shorter than that")
    return body[: cut + 1], False, chosen


def _code(err: Any) -> str:
    """The AWS error code of a botocore ``ClientError``."""
    return str(err.response.get("Error", {}).get("Code", "Unknown"))


def load_definitions() -> tuple[dict[str, Any], dict[str, Any]]:
    """The CSV classifier and crawler definitions Terraform deploys: ``(classifier, crawler)``."""
    package = resources.files("crawlers")
    classifier = json.loads(package.joinpath("csv_classifier.json").read_text(encoding="utf-8"))
    crawler = json.loads(package.joinpath("crawler.json").read_text(encoding="utf-8"))
    return classifier, crawler


def classifier_delimiter() -> str:
    """The custom CSV classifier's delimiter; other delimiters fall to the built-in one."""
    return str(load_definitions()[0]["delimiter"])


def allow_single_column() -> bool:
    """Whether the custom CSV classifier takes a file with one column (a key-only file)."""
    return bool(load_definitions()[0]["allow_single_column"])
