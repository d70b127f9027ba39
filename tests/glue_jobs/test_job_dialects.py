"""The job on files real exporters write: a delimiter ending every line, one column, a wrong
delimiter, an escape typed for a tab; each on both engines (local Spark against moto)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.glue_jobs.conftest import (
    CATALOG_TABLE,
    DATABASE,
    TABLE,
    create_table,
    read_rejects,
    register_catalog,
    scan_table,
)

pytestmark = [pytest.mark.spark, pytest.mark.parametrize("engine", ["spark", "local"])]

TRAILING = "id,name,val,\n1,ann,5,\n2,bob,,\n3,cy,7,x\n4,dee,8,\n"
AFTER_LAST = "a value 'x' after the last named column (the header ends with an unnamed column)"


def test_a_delimiter_ending_every_line_loads_and_a_value_after_it_is_rejected(
        engine: str, run_job: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text(TRAILING, encoding="utf-8")
    rejects = tmp_path / "rejects.csv"

    with caplog.at_level(logging.INFO):
        report = run_job(engine=engine, source_path=str(source), rejects_path=str(rejects),
                         partitions=2)

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert scan_table(TABLE) == {
        ("1",): {"id": {"S": "1"}, "name": {"S": "ann"}, "val": {"N": "5"}},
        ("2",): {"id": {"S": "2"}, "name": {"S": "bob"}},
        ("4",): {"id": {"S": "4"}, "name": {"S": "dee"}, "val": {"N": "8"}},
    }
    header, row = read_rejects(rejects)
    assert (header, row) == (["record_no", "reason", "id", "name", "val", ""],
                             ["3", AFTER_LAST, "3", "cy", "7", "x"])
    assert "the empty last column is dropped" in caplog.text


def test_a_catalog_table_of_a_file_ending_every_line_with_the_delimiter_loads_it(
        engine: str, run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    # What the crawler registers for such a file: the named columns only.
    register_catalog([("id", "string"), ("name", "string"), ("val", "bigint")])
    source = tmp_path / "in.csv"
    source.write_text(TRAILING, encoding="utf-8")

    report = run_job(engine=engine, source_path=str(source), catalog_database=DATABASE,
                     catalog_table=CATALOG_TABLE, rejects_path=str(tmp_path / "r.csv"))

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert sorted(scan_table(TABLE)) == [("1",), ("2",), ("4",)]
    assert report.counts.rows_rejected == 1


@pytest.mark.parametrize("delimiter", [None, ","])
def test_a_one_column_file_loads(engine: str, run_job: Any, tmp_path: Path,
                                 delimiter: str | None) -> None:
    create_table(TABLE, [("email", "S", "HASH")])
    source = tmp_path / "keys.csv"
    source.write_text("email\nann@example.com\nbob@example.com\n", encoding="utf-8")

    report = run_job(engine=engine, source_path=str(source), delimiter=delimiter)

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE) == {
        ("ann@example.com",): {"email": {"S": "ann@example.com"}},
        ("bob@example.com",): {"email": {"S": "bob@example.com"}},
    }


def test_a_catalog_delimiter_that_does_not_split_the_header_says_which_does(
        engine: str, run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    register_catalog([("id", "string"), ("name", "string")])
    source = tmp_path / "in.csv"
    source.write_text("id,name\n1,ann\n", encoding="utf-8")

    report = run_job(engine=engine, source_path=str(source), catalog_database=DATABASE,
                     catalog_table=CATALOG_TABLE, delimiter=";")

    assert report.status == "FAILED"
    assert report.error == (
        f"{source}: the delimiter ';' does not split the header 'id,name' (1 field), but the "
        "first line holds other candidate delimiters: ',' gives 2 fields. Pass `--delimiter ,` "
        "(it overrides the catalog table's delimiter), or re-run the crawler")


def test_text_after_the_crawlers_sample_in_a_numeric_column_says_how_to_keep_it(
        engine: str, run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    rows = [f"k{n},{n}" for n in range(1, 1001)] + ["late,N/A"]
    source.write_text("id,code\n" + "\n".join(rows) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"

    report = run_job(engine=engine, source_path=str(source), rejects_path=str(rejects))

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert read_rejects(rejects)[1][:2] == ["1001", (
        "column 'code': 'N/A' is not a number (the column is typed bigint from the crawler's "
        "sample of the first 1,000 rows; `--column_types code:S` loads it as text)")]


def test_a_tab_typed_as_an_escape_is_the_delimiter(engine: str, aws: str, spark: Any,
                                                   tmp_path: Path) -> None:
    from dynamo_ingest.core.arguments import job_arguments_from_mapping
    from dynamo_ingest.job import run
    from dynamo_ingest.spark.runtime import Runtime

    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.tsv"
    source.write_text("id\tname\n1\tann, jr\n2\tbob\n", encoding="utf-8")

    # The job's arguments as Glue (or the CLI) hands them over: `--delimiter '\t'` arrives
    # as a backslash and a t.
    report = run(job_arguments_from_mapping({
        "source_path": str(source), "target_table": TABLE, "engine": engine,
        "delimiter": "\\t"}), Runtime(spark=spark))

    assert report.status == "SUCCEEDED", report.error
    assert scan_table(TABLE) == {("1",): {"id": {"S": "1"}, "name": {"S": "ann, jr"}},
                                 ("2",): {"id": {"S": "2"}, "name": {"S": "bob"}}}


def test_a_delimiter_given_that_does_not_split_the_header_says_which_does(
        engine: str, run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id|name\n1|ann\n", encoding="utf-8")

    report = run_job(engine=engine, source_path=str(source), delimiter=",")

    assert report.status == "FAILED"
    assert report.error == (
        f"{source}: the delimiter ',' does not split the header 'id|name' (1 field), but the "
        "first line holds other candidate delimiters: '|' gives 2 fields. Pass `--delimiter "
        "pipe`, or leave --delimiter out to detect it")
