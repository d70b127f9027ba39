"""The rejects file: one CSV row per rejected record (record number, reason, then the original
values), in record order.

A partition meets its rows in key-hash order, so each task sorts its own rejects into a part
file (in sorted runs of at most :data:`RUN_BYTES`, merged, so a partition that rejects every
row needs no more memory than one run), and the driver merges the sorted parts into the one
file: both steps are streaming k-way merges, bounded in memory whatever the rejects' size.

The file is safe to open in a spreadsheet: a cell that begins with a character a spreadsheet
reads as the start of a formula (OWASP's CSV injection list: ``=``, ``+``, ``-``, ``@``, tab,
CR, and NUL as ASVS 1.2.10 adds) is written with a leading ``'``, which spreadsheets take as
"this is text" and do not show (:func:`spreadsheet_safe`). A cell that already begins with
``'`` gets one more, so the rule is reversible: the original value of any cell is the cell
without its first character when that character is ``'`` (:func:`original_value`).
"""

from __future__ import annotations

import csv
import heapq
import io
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, TextIO

from dynamo_ingest.control.storage import Storage
from dynamo_ingest.engine.layout import allow_large_csv_fields

REJECTS_HEADER = ("record_no", "reason")
RUN_BYTES = 8 * 1024 * 1024
# Files merged at once: beyond it, merge in passes (one open file per input, and the process
# may open only so many).
MERGE_FAN_IN = 128


def _open(path: Path, mode: Literal["r", "w"]) -> TextIO:
    # surrogateescape writes the original bytes back for invalid UTF-8 values (and reads them).
    return path.open(mode, encoding="utf-8", errors="surrogateescape", newline="")


# What makes a spreadsheet run a cell as a formula, and the escape itself.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")
TEXT_MARK = "'"


def spreadsheet_safe(value: str) -> str:
    """``value`` as the rejects file writes it: marked as text when a spreadsheet would run
    it as a formula (or when it begins with the mark itself, so the escape can be undone)."""
    if value.startswith(FORMULA_STARTS) or value.startswith(TEXT_MARK):
        return TEXT_MARK + value
    return value


def original_value(cell: str) -> str:
    """The value a rejects file's cell stands for (the inverse of :func:`spreadsheet_safe`)."""
    return cell[len(TEXT_MARK):] if cell.startswith(TEXT_MARK) else cell


def _row_text(row: Sequence[str]) -> str:
    """One CSV line ending with ``\\n``; a value holding a line break, a lone CR too, quoted."""
    buffer = io.StringIO()
    # The writer quotes a value that holds a character of its line terminator: with "\r\n"
    # a lone CR is quoted as well (with "\n" it was not, and split the row when read back).
    csv.writer(buffer, lineterminator="\r\n").writerow(row)
    return buffer.getvalue()[:-2] + "\n"


def _csv_line(row: Sequence[object]) -> str:
    return _row_text([spreadsheet_safe(str(v)) for v in row])


def _records(path: Path) -> Iterator[Sequence[str]]:
    """The rows of a sorted run or part, streamed."""
    allow_large_csv_fields()
    with _open(path, "r") as handle:
        yield from csv.reader(handle)


def _record_no(row: Sequence[str]) -> int:
    return int(row[0])


def _merge_into(inputs: Sequence[Path], out: TextIO) -> None:
    streams: list[Iterator[Sequence[str]]] = [_records(path) for path in inputs]
    ordered: Iterator[Sequence[str]] = heapq.merge(*streams, key=_record_no)
    # The rows are already spreadsheet-safe: written again as they are.
    out.writelines(_row_text(row) for row in ordered)


def merge_sorted(inputs: Sequence[Path], out: TextIO, scratch: Path,
                 fan_in: int = MERGE_FAN_IN) -> None:
    """Write the rows of files sorted by record number to ``out`` in record order, merging
    at most ``fan_in`` files at once (intermediate merges go to ``scratch``)."""
    pending = list(inputs)
    passes = 0
    while len(pending) > fan_in:
        merged = []
        for start in range(0, len(pending), fan_in):
            target = scratch / f"merge-{passes}-{start // fan_in:05d}.csv"
            with _open(target, "w") as handle:
                _merge_into(pending[start:start + fan_in], handle)
            merged.append(target)
        pending = merged
        passes += 1
    _merge_into(pending, out)


class RejectsFile:
    """A partition's rejects, handed over as one file sorted by record number."""

    def __init__(self, run_bytes: int = RUN_BYTES) -> None:
        self._run_bytes = run_bytes
        self._buffer: list[tuple[int, str]] = []
        self._buffered = 0
        self._runs: list[Path] = []
        self._scratch: Path | None = None
        self.count = 0

    def add(self, record_no: int, reason: str, values: Sequence[str | None]) -> None:
        """Add one rejected record."""
        line = _csv_line([record_no, reason, *("" if v is None else v for v in values)])
        self._buffer.append((record_no, line))
        self._buffered += len(line)
        self.count += 1
        if self._buffered >= self._run_bytes:
            self._spill()

    def _scratch_folder(self) -> Path:
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="dynamo-ingest-rejects-"))
        return self._scratch

    def _spill(self) -> None:
        """Write the buffer, sorted, as one more run."""
        run = self._scratch_folder() / f"run-{len(self._runs):05d}.csv"
        self._write_sorted_buffer(run)
        self._runs.append(run)

    def _write_sorted_buffer(self, path: Path) -> None:
        # A stable sort: rows of one record number keep the order they were rejected in.
        self._buffer.sort(key=lambda entry: entry[0])
        with _open(path, "w") as handle:
            handle.writelines(line for _, line in self._buffer)
        self._buffer.clear()
        self._buffered = 0

    def close(self) -> Path | None:
        """The temporary part file, sorted by record number (None when nothing was rejected);
        the caller moves it away."""
        if not self.count:
            return None
        fd, name = tempfile.mkstemp(prefix="rejects-", suffix=".csv")
        os.close(fd)
        part = Path(name)
        if not self._runs:
            self._write_sorted_buffer(part)
            return part
        self._spill()
        scratch = self._scratch_folder()
        try:
            with _open(part, "w") as handle:
                merge_sorted(self._runs, handle, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            self._runs.clear()
        return part


def rejects_header(names: Sequence[str]) -> str:
    """The rejects file's header row for a file with these column names."""
    return _csv_line([*REJECTS_HEADER, *names])


def merge_parts(storage: Storage, header: str, parts: Sequence[str], uri: str) -> None:
    """Write ``header`` and the sorted ``parts`` (local paths or ``s3://``), merged in record
    order, as the one rejects file at ``uri``, replacing any earlier one."""
    scratch = Path(tempfile.mkdtemp(prefix="dynamo-ingest-rejects-"))
    try:
        local_parts = [storage.download(part, scratch) for part in parts]
        merged = scratch / "rejects.csv"
        with _open(merged, "w") as handle:
            handle.write(header)
            merge_sorted(local_parts, handle, scratch)
        storage.put_file(merged, uri)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
