"""Splitting a CSV byte stream into records in plain Python, as the Spark reader splits it.

The Spark path (:func:`dynamo_ingest.spark.read.read_records`: multiLine, ISO-8859-1, PERMISSIVE)
hands each record to the pipeline as strings whose characters are the file's bytes, and the
pipeline re-decodes them as strict UTF-8. This module gives the same records, record numbers,
values and ``_corrupt_record`` text without a JVM, reading the stream in chunks. What Spark's
parser (univocity) does, and so what this splitter does:

- The line separator is detected once per file, from the first line break in its first MiB
  (``\\r\\n``, ``\\r`` or ``\\n``; ``\\n`` when there is none). Only that separator ends a
  record inside an unquoted value: in a ``\\n`` file a ``\\r`` before the line end stays in the
  last value; in a ``\\r\\n`` file a lone ``\\n`` inside an unquoted value stays in it, but a
  lone ``\\n`` where a field starts (line start, after a delimiter or a closing quote) ends
  the record; in a ``\\r`` file a ``\\n`` is text wherever it is.
- Blank lines are skipped and do not count as records; a line of spaces is a record.
- Empty values, quoted (``""``) or not, are ``None``. Nothing is trimmed, except whitespace
  (characters up to U+0020) between a closing quote and the delimiter or line end.
- A quote opens a quoted value only as a field's first character; elsewhere it is text.
  ``""`` inside a quoted value is one quote. A closing quote followed by other text keeps the
  quotes and the text up to the next delimiter: ``"ab"x`` is ``"ab"x``. A quote left open runs
  to the end of the file.
- A record with more or fewer fields than expected is malformed: its values are the first
  fields (padded with ``None``), and ``corrupt`` is its text with the line end stripped (one
  ``\\n``, ``\\r\\n`` or form feed, as Scala's ``stripLineEnd``; a ``\\r`` separator stays).

Line breaks inside quoted values are kept as written. Spark's parser does the same only when
it is given the separator (left to detect it, it turns the separator into ``\\n`` there), so
the Spark reader passes the one :func:`detect_separator` finds. Where the splitter
deliberately differs: a UTF-8 byte order mark is dropped even from a file without a header
(Spark keeps it in the first value then).

A record longer than ``record_limit`` bytes is reported with ``rejected`` set and skipped
without being held: memory is bounded by the chunk size plus twice the limit (the raw text of
the pending record and the values parsed from it), whatever the file holds.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, NamedTuple, cast

from dynamo_ingest.core.errors import ArgumentError, FileLayoutError

DEFAULT_CHUNK_BYTES = 1024 * 1024
# Well over DynamoDB's 400 KB item limit, so a record that could still fit an item after
# mapping is never cut, while a runaway record (a missing quote, no line breaks) is bounded.
DEFAULT_RECORD_LIMIT = 4 * 1024 * 1024
# Spark's parser reads its input through a 1 MiB buffer and detects the separator in the first.
SEPARATOR_WINDOW = 1024 * 1024
DYNAMODB_ITEM_LIMIT = "400 KB"

_BOM = codecs.BOM_UTF8.decode("latin-1")
_LINE_BREAK = re.compile("[\r\n]")

# States of the field scanner.
_RECORD, _FIELD, _UNQUOTED, _QUOTED, _CLOSE, _SPACE, _JUNK = range(7)


@dataclass(frozen=True)
class Dialect:
    """How a file writes its records: one-character delimiter and quote, header or not."""

    delimiter: str = ","
    quote_char: str = '"'
    has_header: bool = True

    def __post_init__(self) -> None:
        for name, char in (("delimiter", self.delimiter), ("quote_char", self.quote_char)):
            if len(char) != 1 or char in "\r\n":
                raise ArgumentError(f"{name} expects one character other than a line break, "
                                    f"found {char!r}")
        if self.delimiter == self.quote_char:
            raise ArgumentError(f"delimiter and quote_char must differ, both are "
                                f"{self.delimiter!r}")


class Record(NamedTuple):
    """One data record: values as Spark hands them over (bytes read as ISO-8859-1).

    ``corrupt`` holds the record's text when its field count is wrong (Spark's
    ``_corrupt_record``); ``rejected`` says why the splitter dropped it (too long to hold).
    ``start`` and ``end`` are its byte offsets in the stream, line end excluded.
    """

    record_no: int
    values: list[str | None]
    corrupt: str | None
    rejected: str | None
    start: int
    end: int


_new_tuple = tuple.__new__


def _empty_as_none(values: list[str]) -> list[str | None]:
    """``values`` with each empty value None (as the scanner gives them); most lines have none,
    and the test for one is a scan in C where the conversion is a loop in Python."""
    if "" in values:
        return [value or None for value in values]
    return cast("list[str | None]", values)


def strip_line_end(text: str) -> str:
    """``text`` without one trailing ``\\n``, ``\\r\\n`` or form feed (Scala's stripLineEnd,
    which Spark applies to the text of a malformed record)."""
    if text.endswith("\n"):
        return text[:-2] if text.endswith("\r\n") else text[:-1]
    return text[:-1] if text.endswith("\f") else text


def detect_separator(head: str) -> str:
    """The line separator Spark's parser detects from the first characters of a file."""
    found = _LINE_BREAK.search(head)
    if found is None or found.group() == "\n":
        return "\n"
    return "\r\n" if head[found.start() + 1:found.start() + 2] == "\n" else "\r"


def describe_size(size: int) -> str:
    """``size`` bytes in the unit a user reads best (``4 MiB``, ``512 KiB``, ``100 bytes``)."""
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def _quoted_line_splitter(delim: str, quote: str, crlf_mode: bool
                          ) -> Callable[[str], list[str | None] | None]:
    """The fields of a whole line (its separator excluded) in two common shapes with quotes,
    split in C: unquoted fields then one quoted last field (``a,b,"c, ""d"" e"``), or every
    field quoted (``"a","b"``); None for any other line, which the scanner then reads.

    Each quoted value must be clean: every quote in it doubled, the closing quote the line's
    last character or right before ``delim`` + quote. The scanner gives such a line the same
    fields: an unquoted value's quotes are text, and a doubled quote is one quote."""
    pair, opening, between = quote + quote, delim + quote, quote + delim + quote
    not_first = delim + quote + "\r\n"

    def clean(value: str) -> bool:
        return quote not in value or value.count(quote) == 2 * value.count(pair)

    def split(line: str) -> list[str | None] | None:
        if len(line) < 2 or line[-1] != quote:
            return None
        if line[0] == quote:
            values = line[1:-1].split(between)
            if all(map(clean, values)):
                return [value.replace(pair, quote) or None for value in values]
            return None
        opens = line.find(opening)
        if opens < 0 or line[0] in not_first or opens + 3 > len(line):
            return None
        last, unquoted = line[opens + 2:-1], line[:opens]
        if not clean(last) or (crlf_mode and "\n" in unquoted):
            return None
        fields = _empty_as_none(unquoted.split(delim))
        fields.append((last.replace(pair, quote) if quote in last else last) or None)
        return fields

    return split


class RecordSplitter:
    """Iterates over the data records of a CSV stream, after its header (see the module doc).

    ``width`` is the number of fields a record must have (the catalog's column count); by
    default the header's. :attr:`header` holds the header's fields once iteration started;
    :attr:`max_buffered` the most characters (bytes) held at once.
    """

    def __init__(self, stream: BinaryIO, dialect: Dialect, width: int | None = None, *,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 record_limit: int = DEFAULT_RECORD_LIMIT, source: str = "the file") -> None:
        if chunk_bytes < 1 or record_limit < 1:
            raise ArgumentError(f"chunk_bytes and record_limit expect counts >= 1, found "
                                f"{chunk_bytes} and {record_limit}")
        if width is not None and width < 1:
            raise ArgumentError(f"width expects a field count >= 1, found {width}")
        self.dialect = dialect
        self.width = width
        self.header: list[str] | None = None
        self.max_buffered = 0
        self._stream = stream
        self._chunk_bytes = chunk_bytes
        self._record_limit = record_limit
        self._source = source
        self._too_long = (f"is over {describe_size(record_limit)} "
                          f"(DynamoDB items are at most {DYNAMODB_ITEM_LIMIT})")

    def __iter__(self) -> Iterator[Record]:
        pending_header = self.dialect.has_header
        number = 0
        for fields, corrupt_text, start, end, too_long in self._split():
            if pending_header:
                if too_long:
                    raise FileLayoutError(
                        f"{self._source}: the header row is over "
                        f"{describe_size(self._record_limit)}; expected a row of column names "
                        "(is the delimiter or the quote character wrong?)")
                self.header = [value or "" for value in fields]
                self.width = self.width or len(fields)
                pending_header = False
                continue
            number += 1
            if len(fields) == self.width and not too_long:
                # Record's own constructor is Python code: a tenth of the split's CPU.
                yield _new_tuple(Record, (number, fields, None, None, start, end))
            else:
                self.width = self.width or len(fields)
                yield self._record(number, fields, corrupt_text, start, end, too_long)

    def _record(self, number: int, fields: list[str | None], text: str, start: int, end: int,
                too_long: bool) -> Record:
        width = self.width or len(fields)
        if too_long:
            return Record(number, [None] * width, None, f"record {number} {self._too_long}",
                          start, end)
        found = len(fields)
        if found == width:
            return Record(number, fields, None, None, start, end)
        values = fields[:width] if found > width else fields + [None] * (width - found)
        return Record(number, values, strip_line_end(text), None, start, end)

    def _split(self) -> Iterator[tuple[list[str | None], str, int, int, bool]]:
        """(fields, raw text with line end, start, end, too long) for every non-blank record,
        header included; the text is empty for a record of :attr:`width` fields (not needed).
        One state machine over a buffer that keeps the pending record."""
        read, chunk_bytes, limit = self._stream.read, self._chunk_bytes, self._record_limit
        delim, quote = self.dialect.delimiter, self.dialect.quote_char
        pair, delim_quote = quote + quote, delim + quote
        start_specials = delim + quote + "\r\n"
        # Possessive, so a value with no closing quote yet fails at once, without backtracking.
        other = f"[^{re.escape(quote)}]*+"
        quoted_value = re.compile(f"{other}(?:{re.escape(pair)}{other})*+{re.escape(quote)}").match
        buf, eof = self._first_window()
        sep = detect_separator(buf[:SEPARATOR_WINDOW])
        sep_len = len(sep)
        lf_mode, crlf_mode = sep == "\n", sep == "\r\n"
        quoted_line = _quoted_line_splitter(delim, quote, crlf_mode)
        base = 0  # stream offset of buf[0]
        i = len(_BOM) if buf.startswith(_BOM) else 0
        record_start = i  # stream offset of the pending record
        state = _RECORD
        fields: list[str | None] = []
        content = close = 0  # a quoted value's first character and its closing quote
        sep_at = -1  # next separator at or after i (cached: long lines have many fields)
        too_long = False
        self.max_buffered = len(buf)
        while True:
            n = len(buf)
            end = nxt = -1  # set when the pending record ends: its end and the next start
            need = False
            if state in (_RECORD, _FIELD):
                if i >= n:
                    if not eof:
                        need = True
                    elif state == _RECORD:
                        return
                    else:
                        fields.append(None)
                        end = nxt = n
                else:
                    if state == _RECORD:
                        # The common record: one line without quotes, split in C.
                        if sep_at < i:
                            sep_at = buf.find(sep, i)
                        if sep_at >= 0:
                            line = buf[i:sep_at]
                            if quote not in line and (not crlf_mode or "\n" not in line):
                                if line:
                                    fields = _empty_as_none(line.split(delim))
                                    end, nxt = sep_at, sep_at + sep_len
                                else:
                                    i = sep_at + sep_len  # a blank line
                                    record_start = base + i
                                    continue
                            elif (quoted := quoted_line(line)) is not None:
                                fields = quoted
                                end, nxt = sep_at, sep_at + sep_len
                            elif line[0] not in start_specials:
                                content = i
                                state = _UNQUOTED
                                continue
                    if end < 0:
                        char = buf[i]
                        brk = self._line_break(buf, i, eof, crlf_mode, lf_mode)
                        if brk < 0:
                            need = True
                        elif brk:
                            if state == _RECORD:
                                i += brk
                                record_start = base + i
                                continue
                            fields.append(None)
                            end, nxt = i, i + brk
                        elif char == delim:
                            fields.append(None)
                            i += 1
                            state = _FIELD
                            continue
                        elif char == quote:
                            content = i = i + 1
                            state = _QUOTED
                            continue
                        else:
                            content = i
                            state = _UNQUOTED
                            continue
            elif state == _UNQUOTED:
                if sep_at < i:
                    sep_at = buf.find(sep, i)
                line_end = sep_at if sep_at >= 0 else n
                # Fast path: every field up to the next quoted one (or the line end) in one
                # split, since quotes inside unquoted values are plain text.
                opens = buf.find(delim_quote, i, line_end)
                if opens >= 0 or sep_at >= 0:
                    bulk_end = opens if opens >= 0 else sep_at
                    segment = buf[content:bulk_end]
                    if not crlf_mode or "\n" not in segment:
                        fields.extend([v or None for v in segment.split(delim)])
                        if opens >= 0:
                            content = i = opens + 2
                            state = _QUOTED
                            continue
                        end, nxt = sep_at, sep_at + sep_len
                if end >= 0:
                    pass
                elif (stop := buf.find(delim, i, line_end)) >= 0:
                    fields.append(buf[content:stop] or None)
                    i = stop + 1
                    state = _FIELD
                    continue
                elif sep_at >= 0:
                    fields.append(buf[content:sep_at] or None)
                    end, nxt = sep_at, sep_at + sep_len
                elif eof:
                    fields.append(buf[content:n] or None)
                    end = nxt = n
                else:
                    # A "\r" at the end may start the "\r\n" the next chunk completes.
                    i = max(content, n - sep_len + 1)
                    need = True
            elif state == _QUOTED:
                # The closing quote, past any doubled ones, found in C.
                closing = quoted_value(buf, i)
                close = closing.end() - 1 if closing else buf.find(quote, i)
                if close >= 0:
                    i = close + 1
                    # The usual close, a delimiter or the separator next, without a state change.
                    if i < n and buf[i] == delim:
                        fields.append(buf[content:close].replace(pair, quote) or None)
                        i += 1
                        state = _FIELD
                        continue
                    if i == sep_at:
                        fields.append(buf[content:close].replace(pair, quote) or None)
                        end, nxt = i, i + sep_len
                    else:
                        state = _CLOSE
                        continue
                elif eof:
                    fields.append(buf[content:n].replace(pair, quote) or None)
                    end = nxt = n
                else:
                    i = n
                    need = True
            elif state in (_CLOSE, _SPACE):
                if i >= n:
                    if eof:
                        fields.append(buf[content:close].replace(pair, quote) or None)
                        end = nxt = n
                    else:
                        need = True
                else:
                    char = buf[i]
                    brk = 0 if char == delim else self._line_break(buf, i, eof, crlf_mode,
                                                                   lf_mode)
                    if brk < 0:
                        need = True
                    elif state == _CLOSE and char == quote:
                        i += 1  # a doubled quote: the value goes on
                        state = _QUOTED
                        continue
                    elif brk or char == delim:
                        fields.append(buf[content:close].replace(pair, quote) or None)
                        if brk:
                            end, nxt = i, i + brk
                        else:
                            i += 1
                            state = _FIELD
                            continue
                    elif char <= " ":
                        i += 1  # dropped unless text follows
                        state = _SPACE
                        continue
                    else:
                        state = _JUNK
                        continue
            else:  # _JUNK: a closing quote followed by text; the value runs to the delimiter
                limit_at = n
                if sep_at < i:
                    sep_at = buf.find(sep, i)
                if sep_at >= 0:
                    limit_at = sep_at
                if crlf_mode:
                    lone = buf.find("\n", i, limit_at)
                    if lone >= 0:
                        limit_at = lone
                stop = buf.find(delim, i, limit_at)
                if stop >= 0:
                    fields.append(quote + buf[content:close].replace(pair, quote)
                                  + buf[close:stop])
                    i = stop + 1
                    state = _FIELD
                    continue
                if limit_at < n or eof:
                    fields.append(quote + buf[content:close].replace(pair, quote)
                                  + buf[close:limit_at])
                    end = limit_at
                    nxt = n if limit_at == n else limit_at + (
                        sep_len if limit_at == sep_at else 1)
                else:
                    i = max(i, n - sep_len + 1)
                    need = True
            if end >= 0:
                start = record_start - base
                over = too_long or end - start > limit
                # The raw text is only read for a record of the wrong width (its corrupt
                # text): most records skip the copy.
                text = "" if over or len(fields) == self.width else buf[start:nxt]
                yield (fields, text, record_start, base + end, over)
                fields = []
                i = nxt
                record_start = base + nxt
                state = _RECORD
                too_long = False
                continue
            assert need, "every state continues, ends the record or needs more input"
            if not too_long and n - (record_start - base) > limit:
                too_long = True
            if too_long:
                # Past the limit only the scanner's state matters, not the text: drop it.
                fields.clear()
                keep = i
                content = close = i
            else:
                keep = record_start - base
            chunk = read(chunk_bytes)
            if not chunk:
                eof = True
                continue
            buf = buf[keep:] + chunk.decode("latin-1")
            base += keep
            i -= keep
            content -= keep
            close -= keep
            sep_at = -1
            held = len(buf) + sum(len(value) for value in fields if value)
            self.max_buffered = max(self.max_buffered, held)

    @staticmethod
    def _line_break(buf: str, i: int, eof: bool, crlf_mode: bool, lf_mode: bool) -> int:
        """Length of the line break at ``buf[i]`` where a field starts or a quoted value has
        closed (0: none; -1: a ``\\r`` at the end whose meaning the next chunk decides)."""
        char = buf[i]
        if char == "\n":
            # Spark's parser ends a record at its normalised newline, "\n" unless the file's
            # separator is a lone "\r" (then a "\n" is text).
            return 1 if lf_mode or crlf_mode else 0
        if char != "\r" or lf_mode:
            return 0
        if not crlf_mode:
            return 1
        if i + 1 < len(buf):
            return 2 if buf[i + 1] == "\n" else 0
        return 0 if eof else -1

    def _first_window(self) -> tuple[str, bool]:
        """The file's first characters: enough to drop a BOM and detect the line separator."""
        buf = ""
        while len(buf) < SEPARATOR_WINDOW:
            found = _LINE_BREAK.search(buf)
            if found is not None and (found.group() == "\n" or found.end() < len(buf)):
                return buf, False
            chunk = self._stream.read(self._chunk_bytes)
            if not chunk:
                return buf, True
            buf += chunk.decode("latin-1")
        return buf, False
