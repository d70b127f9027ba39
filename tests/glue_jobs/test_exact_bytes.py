"""Values load byte for byte on both engines: line breaks inside quoted values (CRLF, CR, LF
in files of every line ending), a CR in a key, a last line with no line break, the twelve
csv-spectrum edge cases; and a runaway record is refused without being held in memory.

Real local Spark and moto over HTTP; each file is loaded by the Spark engine and by the
in-process engine, and both tables must equal the values as written.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
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


STEP = 64 * 1024  # the reader's read size: a CR at the end of one step, LF in the next
SEPARATOR_CASES = {
    "lf.csv": (b"id,v\n1,a\r\n", "\n"),
    "crlf.csv": (b"id,v\r\n1,a\n", "\r\n"),
    "cr.csv": (b"id,v\r1,\"a\r\nb\"\r", "\r"),
    "no_line_break.csv": (b"id,v", "\n"),
    "empty.csv": (b"", "\n"),
    "crlf_across_steps.csv": (b"i" * (STEP - 1) + b"\r\n1\r\n", "\r\n"),
    "long_first_line.csv": (b"d" * (3 * STEP) + b"\r2\n", "\r"),
}


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(SEPARATOR_CASES))
def test_the_spark_reader_is_given_the_separator_the_splitter_detects(
        name: str, spark: Any, tmp_path: Path) -> None:
    from dynamo_ingest.spark.read import line_separator

    data, separator = SEPARATOR_CASES[name]
    plain, packed = tmp_path / name, tmp_path / f"{name}.gz"
    plain.write_bytes(data)
    packed.write_bytes(gzip.compress(data))

    assert line_separator(spark, str(plain)) == separator
    # Through Hadoop's codec, as Spark reads a .gz file.
    assert line_separator(spark, str(packed)) == separator


@pytest.mark.spark
def test_a_path_hadoop_cannot_open_leaves_the_separator_to_spark(spark: Any,
                                                                  tmp_path: Path) -> None:
    from dynamo_ingest.spark.read import line_separator

    assert line_separator(spark, str(tmp_path / "missing.csv")) is None


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
    exact, different = [], {}
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
            different[name] = (table, written)
    assert exact == sorted(SPECTRUM_ROWS), different


RUNAWAY_BYTES = 1 << 30  # one record of 1 GiB with no line break
MEMORY_BOUND = 1 << 30
# One load in a process of its own (and, for Spark, its own JVM), so its memory is its own.
LOAD_SCRIPT = """
import sys
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.job import run
run(JobArguments(source_path=sys.argv[1], target_table=sys.argv[2], engine=sys.argv[3],
                 report_path=sys.argv[4], rejects_path=sys.argv[5], partitions=2))
"""


def write_runaway_file(path: Path) -> None:
    """Two small records around one of :data:`RUNAWAY_BYTES`, written a MiB at a time."""
    step = b"x" * (1 << 20)
    with path.open("wb") as handle:
        handle.write(b"id,v\n1,a\n2,")
        for _ in range(RUNAWAY_BYTES // len(step)):
            handle.write(step)
        handle.write(b"\n3,c\n")


def peak_resident_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM): no sample can miss the top."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_and_measure(command: list[str], bound_s: float = 900) -> int:
    """Run ``command`` to its end; the sum of the peak resident sets of it and every
    descendant seen while it ran (at least the tree's peak at any one moment)."""
    peaks: dict[int, int] = {}
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    try:
        while True:
            for proc in [root, *root.children(recursive=True)]:
                # A process may end between the listing and the read.
                with contextlib.suppress(OSError, psutil.Error):
                    peaks[proc.pid] = max(peaks.get(proc.pid, 0), peak_resident_bytes(proc.pid))
            try:
                child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                bound_s -= 0.2
                assert bound_s > 0, "the load did not end"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return sum(peaks.values())


@pytest.mark.spark
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_a_one_gib_record_is_refused_with_its_reason_in_bounded_memory(
        engine: str, aws: str, tmp_path: Path) -> None:
    from tests.glue_jobs.conftest import TABLE, create_table, read_rejects, scan_table

    source = tmp_path / "runaway.csv"
    write_runaway_file(source)
    create_table(TABLE, [("id", "S", "HASH")])
    report_path, rejects_path = tmp_path / "report.json", tmp_path / "rejects.csv"

    try:
        peak = run_and_measure([sys.executable, "-c", LOAD_SCRIPT, str(source), TABLE, engine,
                                str(report_path), str(rejects_path)])
    finally:
        source.unlink()  # pytest keeps the last runs' folders: never keep a GiB there

    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.0f} MiB"
    if engine == "local":
        # The splitter rejects the record without holding it, and loads the others.
        assert report["status"] == "SUCCEEDED_WITH_REJECTS", report
        assert sorted(scan_table(TABLE)) == [("1",), ("3",)]
        (_, rejected) = read_rejects(rejects_path)
        assert rejected[:2] == ["2", "record 2 is over 4 MiB (DynamoDB items are at most "
                                     "400 KB)"]
    else:
        # Spark's parser stops at the bound; the run fails before it writes, and says why.
        assert report["status"] == "FAILED"
        assert report["error"].startswith(f"{source}: record 2 holds a value over 4 MiB")
        assert report["retryable"] is False
        assert scan_table(TABLE) == {}
