"""``--engine auto``: the small-file model at its boundaries (a pure function), and a small file
loaded by ``run``'s default without starting Spark, the report and the ledger naming the
engine and why."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.control.storage import file_md5
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE, JobArguments
from dynamo_ingest.core.engine_choice import (
    DEFAULT_BYTES_PER_ROW,
    LOCAL_CPU_S_PER_ROW,
    SMALL_LOAD_SECONDS,
    choose_engine,
)

from tests.glue_jobs.conftest import TABLE, create_table, scan_table

# The rows whose per-row work on 2 cores takes exactly the threshold, unpaced.
CPU_BOUND_ROWS = SMALL_LOAD_SECONDS * 2 / LOCAL_CPU_S_PER_ROW


def size_of(rows: float, bytes_per_row: float = DEFAULT_BYTES_PER_ROW) -> int:
    return int(rows * bytes_per_row)


def test_an_unpaced_load_is_local_up_to_the_threshold_of_work_on_its_cores() -> None:
    at = choose_engine(size_of(CPU_BOUND_ROWS * 0.999), None, workers=2)
    over = choose_engine(size_of(CPU_BOUND_ROWS * 1.001), None, workers=2)

    assert (at.engine, over.engine) == ("local", "spark")
    assert at.predicted_s <= SMALL_LOAD_SECONDS < over.predicted_s
    # Twice the cores, twice the rows within the threshold.
    assert choose_engine(size_of(CPU_BOUND_ROWS * 1.9), None, workers=4).engine == "local"
    assert "on 2 core(s)" in over.reason
    assert "over the small-file threshold of 300 s" in over.reason


def test_a_paced_load_is_judged_by_the_table_write_rate() -> None:
    rate = 1000.0  # WCU/s: the threshold's worth is 300,000 rows of one write unit
    rows = SMALL_LOAD_SECONDS * rate

    assert choose_engine(size_of(rows * 0.999), rate).engine == "local"
    slow = choose_engine(size_of(rows * 1.001), rate)
    assert slow.engine == "spark"
    assert "300,300 WCU at 1,000 WCU/s" in slow.reason
    # Rows of two write units take twice as long at the same rate.
    assert choose_engine(size_of(rows * 0.6), rate, wcu_per_row=2).engine == "spark"
    # Longer rows are fewer rows in the same bytes.
    assert choose_engine(size_of(rows * 1.5), rate, bytes_per_row=400).engine == "local"


def test_an_empty_or_tiny_file_is_local() -> None:
    for size in (0, 1, 10_000):
        choice = choose_engine(size, 10.0)
        assert choice.engine == "local", choice
        assert choice.reason.startswith("local: the load is predicted at")


def test_auto_is_the_default_engine() -> None:
    assert JobArguments(source_path="x.csv", target_table="t").engine == "auto"


def test_auto_loads_a_small_file_without_starting_spark(aws: str, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "small.csv"
    source.write_text("id,n\n" + "".join(f"k{i},{i}\n" for i in range(500)), encoding="utf-8")
    # A process of its own, so that no Spark session of another test is about: the job
    # module may import pyspark, but no SparkContext may be started (no JVM).
    code = (
        "import json, sys\n"
        "from dynamo_ingest.core.arguments import JobArguments\n"
        "from dynamo_ingest.job import run\n"
        f"report = run(JobArguments(source_path={str(source)!r}, target_table={TABLE!r}))\n"
        "spark = sys.modules.get('pyspark')\n"
        "started = bool(spark and spark.SparkContext._active_spark_context)\n"
        "print(json.dumps({'report': report.to_dict(), 'spark_started': started}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    report = out["report"]

    assert out["spark_started"] is False
    assert report["status"] == "SUCCEEDED", report
    assert report["engine"] == "local"
    assert report["engine_reason"].startswith("local: the load is predicted at")
    assert report["items_written"] == 500
    assert len(scan_table(TABLE)) == 500
    record = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE).get(
        SourceObject("", str(source), file_md5(source)))
    assert record is not None
    assert (record.engine, record.engine_reason) == ("local", report["engine_reason"])


@pytest.mark.spark
def test_auto_keeps_the_spark_session_it_is_handed(run_job: object, aws: str,
                                                   tmp_path: Path) -> None:
    # A Glue job run has started Spark before the job chooses: its start-up is paid.
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "small.csv"
    source.write_text("id,n\nk1,1\nk2,2\n", encoding="utf-8")

    report = run_job(source_path=str(source))  # type: ignore[operator]

    assert report.status == "SUCCEEDED", report.error
    assert report.extra["engine"] == "spark"
    assert "Spark already running" in report.extra["engine_reason"]
