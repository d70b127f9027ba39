"""Values load byte for byte on both engines: line breaks inside quoted values (CRLF, CR, LF
in files of every line ending), a CR in a key, a last line with no line break, the twelve
csv-spectrum edge cases; and a runaway record is refused without being held in memory.

Real local Spark and moto over HTTP; each file is loaded by the Spark engine and by the
in-process engine, and both tables must equal the values as written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.glue_jobs.test_engines import ENGINES, Outcome, load

SPECTRUM = Path(__file__).parents[1] / "csv_corpus" / "spectrum"
SPECTRUM_ROWS: dict[str, list[dict[str, str]]] = json.loads(
    (SPECTRUM / "expected.json").read_text(encoding="utf-8"))

# (file bytes, the value of `v` each id must hold). Spark detected the line separator itself
# before, and then turned a quoted separator into LF: these are the files where it did.
LINE_BREAK_CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "quoted_crlf_in_a_crlf_file": (b'id,v\r\n1,"a\r\nb"\r\n2,"\r\n"\r\n3,x\r\n',
                                   {"1": "a\r\nb", "2": "\r\n", "3": "x"}),
    "quoted_crlf_in_an_lf_file": (b'id,v\n1,"a\r\nb"\n2,x\n', {"1": "a\r\nb", "2": "x"}),
    "lone_cr_in_quoted_values": (b'id,v\r\n1,"a\rb"\r\n2,"c\nd"\r\n3,"\r"\r\n',
                                 {"1": "a\rb", "2": "c\nd", "3": "\r"}),
    "quoted_cr_in_a_cr_file": (b'id,v\r1,"a\rb"\r2,"c\r\nd"\r', {"1": "a\rb", "2": "c\r\nd"}),
    "cr_in_a_key_column": (b'id,v\r\n"k\r1",a\r\n"k\r\n2",b\r\nk3,c\r\n',
                           {"k\r1": "a", "k\r\n2": "b", "k3": "c"}),
    "last_line_without_terminator": (b'id,v\r\n1,a\r\n2,"x\r\ny"', {"1": "a", "2": "x\r\ny"}),
}


def values(outcome: Outcome, column: str) -> dict[str, str]:
    """Each item's ``column`` value by its key (the table's values as stored)."""
    return {key[0]: next(iter(item[column].values())) for key, item in outcome.table.items()
            if column in item}


@pytest.mark.spark
@pytest.mark.parametrize("case", sorted(LINE_BREAK_CASES))
def test_line_breaks_inside_quoted_values_load_as_written_on_both_engines(
        case: str, aws: str, spark: Any, tmp_path: Path) -> None:
    data, expected = LINE_BREAK_CASES[case]
    source = tmp_path / f"{case}.csv"
    source.write_bytes(data)

    spark_run, local_run = [load(engine, spark, [("id", "S", "HASH")], source_path=str(source),
                                 partitions=2) for engine in ENGINES]

    assert spark_run.status == "SUCCEEDED", spark_run
    assert values(spark_run, "v") == expected
    assert local_run.table == spark_run.table
    assert local_run.counts == spark_run.counts


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
def test_the_csv_spectrum_suite_loads_twelve_of_twelve_exactly(engine: str, aws: str,
                                                                spark: Any,
                                                                tmp_path: Path) -> None:
    assert len(SPECTRUM_ROWS) == 12
    exact = []
    for name, rows in sorted(SPECTRUM_ROWS.items()):
        key = next(iter(rows[0]))
        source = tmp_path / f"{name}.csv"
        shutil.copy(SPECTRUM / source.name, source)
        outcome = load(engine, spark, [(key, "S", "HASH")], source_path=str(source),
                       partitions=2)
        # Values as stored, whatever their type; an empty value is left out (--empty_value omit).
        table = sorted(({column: next(iter(value.values())) for column, value in item.items()}
                        for item in outcome.table.values()), key=lambda row: row[key])
        written = sorted(({column: value for column, value in row.items() if value}
                          for row in rows), key=lambda row: row[key])
        assert outcome.status == "SUCCEEDED", (name, outcome)
        if table == written:
            exact.append(name)
        else:
            print(name, table, written)
    assert exact == sorted(SPECTRUM_ROWS)
