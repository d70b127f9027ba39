"""The CSV's layout, Spark-free: column names of the values, the header and the delimiter
(shared by both engines, the estimate and the crawler), read from the file's text as
:func:`dynamo_ingest.engine.source.open_source` gives it (decompressed, UTF-16 as UTF-8).

Values travel as their bytes read as ISO-8859-1 (one character per byte) and are re-decoded
strictly by the item builder in the values' encoding (UTF-8 unless ``--encoding`` says a
single-byte one), whichever engine split the records.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dynamo_ingest.core.errors import FileLayoutError, SourceError
from dynamo_ingest.engine.source import SourceLimits, open_source, read_prefix

CORRUPT_COLUMN = "_corrupt_record"
RECORD_NO = "_record_no"
KEY_HASH = "_key_hash"
HEADER_PROBE_BYTES = 1024 * 1024


def value_column(index: int) -> str:
    """Internal Spark name of the ``index``-th CSV column (header names can be anything)."""
    return f"c{index}"


# Python's csv module refuses fields over 128 KiB by default, but one DynamoDB item holds up to
# 400 KB: a big value must load, or be rejected as too big, never fail the file.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


def allow_large_csv_fields() -> None:
    """Raise the csv module's (process-wide) field size limit to :data:`CSV_FIELD_LIMIT`."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)


# The delimiters Glue's CSV classifier tries, in its order.
CANDIDATE_DELIMITERS = (",", "|", "\t", ";", "\x01")
TRAILING_DELIMITER_NOTE = "every line ends with the delimiter: the empty last column is dropped"


@dataclass(frozen=True)
class HeaderRow:
    """The header's column names, and whether every line ends with the delimiter."""

    names: list[str]
    trailing_delimiter: bool = False


def ends_with_unnamed_column(fields: Sequence[str]) -> bool:
    """True when the header's last field is empty: exporters that end every line with the
    delimiter write one more (empty) field than there are columns. The crawler and the job
    both drop that column, and a row with a value there is rejected."""
    return len(fields) > 1 and fields[-1] == ""


def delimiter_splits(first_line: str, quote_char: str) -> dict[str, int]:
    """How many fields each candidate delimiter found in ``first_line`` splits it into."""
    found: dict[str, int] = {}
    for candidate in CANDIDATE_DELIMITERS:
        if candidate == quote_char or candidate not in first_line:
            continue
        try:
            fields = next(csv.reader([first_line], delimiter=candidate, quotechar=quote_char), [])
        except csv.Error:
            continue
        if len(fields) > 1:
            found[candidate] = len(fields)
    return found


def refuse_wrong_delimiter(source: str, header: Sequence[str], first_line: str, delimiter: str,
                           quote_char: str, fix: str) -> None:
    """Raise :class:`FileLayoutError` when ``delimiter`` leaves the header one field while
    another candidate splits its first line: reading such a file as one column would load
    nothing the user meant. ``fix`` ends the message (what else resolves it)."""
    if len(header) != 1:
        return
    splits = delimiter_splits(first_line, quote_char)
    if not splits:
        return
    found = ", ".join(f"{_named(c)} gives {n} fields" for c, n in splits.items())
    best = max(splits, key=lambda c: splits[c])
    raise FileLayoutError(
        f"{source}: the delimiter {_named(delimiter)} does not split the header "
        f"{first_line.rstrip()[:80]!r} (1 field), but the first line holds other candidate "
        f"delimiters: {found}. Pass `--delimiter {_typed(best)}`{fix}")


def _named(char: str) -> str:
    """A delimiter as a message names it (a tab is invisible when quoted)."""
    return {"\t": "tab", "\x01": "Ctrl-A"}.get(char, repr(char))


def _typed(char: str) -> str:
    """A delimiter as `--delimiter` takes it on a command line."""
    return {"\t": "tab", "\x01": "ctrl-a", "|": "pipe", ";": "semicolon"}.get(char, char)


def read_header(head: bytes, delimiter: str, quote_char: str, source: str,
                encoding: str = "utf-8") -> HeaderRow:
    """The header names exactly as written (BOM dropped), from the first bytes of the file's
    text (:func:`dynamo_ingest.engine.source.open_source`), decoded with ``encoding`` (the
    values' encoding); an unnamed last column (a delimiter ending every line) is dropped and
    flagged."""
    if not head.strip():
        raise FileLayoutError(f"{source}: the file is empty; expected a header row")
    # Only the header must decode; bad bytes further down reject their own records.
    text = head.removeprefix(codecs.BOM_UTF8).decode(encoding, "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quote_char,
                        strict=False)
    try:
        header = next(reader)
    except (csv.Error, StopIteration) as err:
        raise SourceError(f"{source}: cannot parse the header row ({err})") from err
    if len(head) >= HEADER_PROBE_BYTES:
        # A full probe must hold the header and the start of a second record.
        try:
            next(reader)
        except (csv.Error, StopIteration) as err:
            raise SourceError(f"{source}: the header row is longer than "
                              f"{HEADER_PROBE_BYTES} bytes") from err
    names = [name.strip("\r") for name in header]
    trailing = ends_with_unnamed_column(names)
    if trailing:
        names.pop()
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError as err:
            called = "UTF-8" if encoding == "utf-8" else encoding
            raise SourceError(f"{source}: the header row is not valid {called} "
                              f"(column {name!r}); pass --encoding with the file's "
                              "encoding") from err
    if any(not name for name in names):
        position = [i + 1 for i, name in enumerate(names) if not name]
        raise SourceError(f"{source}: header column(s) {position} have no name; every column "
                          "needs one (it becomes the DynamoDB attribute name)")
    seen: set[str] = set()
    repeated = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if repeated:
        raise SourceError(f"{source}: header names repeat ({', '.join(repeated)}); DynamoDB "
                          "attribute names must be unique")
    return HeaderRow(names, trailing)


def parse_header(head: bytes, delimiter: str, quote_char: str, source: str) -> list[str]:
    """The header's column names (see :func:`read_header`)."""
    return read_header(head, delimiter, quote_char, source).names


def read_source_head(path: str, s3: Any | None, *, name: str, encoding: str | None = None,
                     limits: SourceLimits = SourceLimits()) -> bytes:
    """The first :data:`HEADER_PROBE_BYTES` of the file's text (decompressed, UTF-16 as UTF-8);
    ``path`` is a local path or ``s3://`` (read with ``s3``), ``name`` the file in messages."""
    with open_source(path, s3=s3, limits=limits, encoding=encoding, name=name) as stream:
        return read_prefix(stream, HEADER_PROBE_BYTES)[0]
