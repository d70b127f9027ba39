"""The rejects file is safe to open in a spreadsheet: no cell begins with what a spreadsheet
runs as a formula, and every cell's original value (its bytes too) is recoverable by one rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dynamo_ingest.engine.rejects import (
    FORMULA_STARTS,
    RejectsFile,
    original_value,
    rejects_header,
    spreadsheet_safe,
)

from tests.glue_jobs.conftest import read_rejects
from tests.glue_jobs.test_engines import ENGINES, load

HOSTILE = ["=HYPERLINK(\"http://x\",\"y\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
           "\tx", "\r=x", "\0=1", "'=already marked", "''", "'", "a=b", "caf\udcc3", "=caf\udcc3",
           "", "plain"]


def opens_as_text(cell: str) -> bool:
    """True when a spreadsheet would not run the cell as a formula."""
    return not cell.startswith(FORMULA_STARTS)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_is_written_as_text_and_its_original_comes_back(value: str) -> None:
    cell = spreadsheet_safe(value)
    assert opens_as_text(cell)
    assert original_value(cell) == value
    # Only what needs it is marked: plain values stay as written.
    assert (cell == value) == (not value.startswith((*FORMULA_STARTS, "'")))


def test_the_rejects_file_marks_formulas_in_values_and_header() -> None:
    rejects = RejectsFile()
    rejects.add(1, "column amount: not a number", HOSTILE)
    part = rejects.close()
    assert part is not None
    try:
        (row,) = read_rejects(part)
    finally:
        part.unlink()
    assert all(opens_as_text(cell) for cell in row)
    assert [original_value(cell) for cell in row[2:]] == HOSTILE
    assert rejects_header(["id", "=cmd", "-x"]) == "record_no,reason,id,'=cmd,'-x\n"


@pytest.mark.spark
def test_both_engines_write_rejected_formulas_as_text_keeping_the_bytes(
        aws: str, spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "formulas.csv"
    rows = [b"1,=1+2,=HYPERLINK(\"http://evil\")", b"2,+5x,@SUM(A1)", b"3,-7x,\"\tx\ry\"",
            b"4,'8x,=caf\xc3", b"5,9,fine"]
    source.write_bytes(b"id,amount,note\n" + b"\n".join(rows) + b"\n")

    outcomes = [load(engine, spark, [("id", "S", "HASH")], source_path=str(source),
                     column_types="amount:N", partitions=2) for engine in ENGINES]

    spark_run, local_run = outcomes
    assert spark_run.status == "SUCCEEDED_WITH_REJECTS"
    assert spark_run.counts["rows_rejected"] == 4
    assert local_run.rejects == spark_run.rejects
    assert spark_run.rejects is not None
    rejects = tmp_path / "rejects.csv"
    rejects.write_bytes(spark_run.rejects)
    header, *rejected = read_rejects(rejects)
    assert header == ["record_no", "reason", "id", "amount", "note"]
    assert all(opens_as_text(cell) for row in rejected for cell in row)
    # The fields of each rejected record, as bytes, are the file's own.
    recovered = [b",".join(original_value(cell).encode("utf-8", "surrogateescape")
                           for cell in row[2:]) for row in rejected]
    written = [row.replace(b'"\tx\ry"', b"\tx\ry") for row in rows[:4]]
    assert recovered == written
