"""The in-process engine against the Spark engine: the same key hash and partition per record,
and over the CSV corpus and a generated file the same table, counts and rejects file bytes;
its own resume, and an external sort whose memory does not grow with the input."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.engine.local import (
    ExternalSort,
    key_hasher,
    partitioner,
    python_spark_partition,
    spark_partition,
)
from dynamo_ingest.spark.runtime import Runtime

from dynamo_ingest_cli.datagen import attribute_types_for_layout, generate_csv, schema_for_layout
from local_aws.dynamodb_double import FaultPlan
from tests.glue_jobs.conftest import (
    CATALOG_TABLE,
    DATABASE,
    TABLE,
    create_table,
    dynamodb_double,
    read_rejects,
    register_catalog,
    scan_table,
)

CORPUS = Path(__file__).parents[1] / "csv_corpus"
CORPUS_FILES = sorted(path.name for path in CORPUS.glob("*.csv"))
CORPUS_COLUMNS = [("id", "bigint"), ("name", "string"), ("amount", "double")]
ENGINES = ("spark", "local")


@dataclass
class Outcome:
    """What one load left behind, in the terms the engines must agree on."""

    table: dict[tuple[str, ...], dict[str, Any]]
    status: str
    counts: dict[str, Any]
    rejects: bytes | None


def load(engine: str, spark: Any, keys: list[tuple[str, str, str]], **kwargs: Any) -> Outcome:
    """Load into a fresh table with one engine; the table is dropped afterwards."""
    from dynamo_ingest.job import run

    create_table(TABLE, keys)
    try:
        report: RunReport = run(JobArguments(target_table=TABLE, engine=engine, **kwargs),
                                Runtime(spark=spark))
        table = scan_table(TABLE)
    finally:
        boto3.client("dynamodb").delete_table(TableName=TABLE)
    rejects = None
    if report.rejects_path:
        rejects = Path(report.rejects_path).read_bytes()
        Path(report.rejects_path).unlink()
    data = report.to_dict()
    counts = {name: data[name] for name in ("rows_read", "items_written", "rows_rejected",
                                            "duplicate_rows", "wcu_consumed")}
    assert report.error is None or report.status != "FAILED", report.error
    assert report.extra["engine"] == engine
    return Outcome(table, report.status, counts, rejects)


@pytest.mark.spark
@pytest.mark.parametrize("name", CORPUS_FILES)
def test_both_engines_load_each_corpus_file_alike(name: str, aws: str, spark: Any,
                                                  tmp_path: Path) -> None:
    source = tmp_path / name
    shutil.copy(CORPUS / name, source)
    register_catalog(CORPUS_COLUMNS)
    outcomes = [load(engine, spark, [("id", "S", "HASH")], source_path=str(source),
                     catalog_database=DATABASE, catalog_table=CATALOG_TABLE, partitions=3)
                for engine in ENGINES]

    spark_run, local_run = outcomes
    assert local_run.counts == spark_run.counts
    assert local_run.status == spark_run.status
    assert local_run.table == spark_run.table
    assert local_run.rejects == spark_run.rejects


@pytest.mark.spark
def test_both_engines_load_a_file_whose_lines_end_with_the_delimiter_alike(
        aws: str, spark: Any, tmp_path: Path) -> None:
    source = tmp_path / "trailing.csv"
    source.write_bytes(b"id,name,val,\n1,a,10,\n2,b,20,\n3,c,30,x\n4,d,40,\n")
    spark_run, local_run = [load(engine, spark, [("id", "S", "HASH")], source_path=str(source),
                                 partitions=2) for engine in ENGINES]
    assert (spark_run.status, spark_run.counts["items_written"]) == ("SUCCEEDED_WITH_REJECTS", 3)
    assert local_run.counts == spark_run.counts
    assert local_run.table == spark_run.table
    assert local_run.rejects == spark_run.rejects


GENERATED_CASES = {
    "overwrite": {},
    "merge_with_version": {"write_mode": "merge", "version_column": "quantity"},
    "insert_renamed_template": {"write_mode": "insert", "rename": "note:remark",
                                "sort_key_template": "{orderId}#{batchId}",
                                "drop_columns": "isPriority", "empty_value": "null"},
}


@pytest.mark.spark
@pytest.mark.parametrize("case", sorted(GENERATED_CASES))
def test_both_engines_load_a_generated_file_alike(case: str, aws: str, spark: Any,
                                                  tmp_path: Path) -> None:
    options = GENERATED_CASES[case]
    generated = generate_csv(tmp_path / "orders.csv", 3000, seed=13, duplicate_every=17,
                             bad_every=97, line_ending="crlf")
    register_catalog(schema_for_layout())
    types = attribute_types_for_layout()
    keys = [("batchId", types["batchId"], "HASH"), ("orderId", types["orderId"], "RANGE")]
    if "sort_key_template" in options:
        keys[1] = ("sk", "S", "RANGE")
    outcomes = [load(engine, spark, keys, source_path=str(generated.path),
                     catalog_database=DATABASE, catalog_table=CATALOG_TABLE, partitions=4,
                     **options)
                for engine in ENGINES]

    spark_run, local_run = outcomes
    assert spark_run.counts["duplicate_rows"] > 0
    assert spark_run.counts["rows_rejected"] >= len(generated.expected_rejects)
    assert local_run.counts == spark_run.counts
    assert local_run.status == spark_run.status == "SUCCEEDED_WITH_REJECTS"
    assert local_run.table == spark_run.table
    assert local_run.rejects == spark_run.rejects


NUMBER_TEXTS = ["1", "1.0", "01", " 7 ", "\u00a07", "-0", "0", "1e3", "NaN", "Infinity", "-inf",
                "1d", "x", "", "12345678901234567890", "0.1", "\x017"]
TEXTS = ["a", "é".encode().decode("latin-1"), "", "#", "日本".encode().decode("latin-1"),
         "ORD-123968195", " spaced "]


@pytest.mark.spark
@pytest.mark.parametrize("key", ["composite", "one_text_column"])
def test_key_hash_and_partition_are_sparks(spark: Any, key: str) -> None:
    """Both the general hash (an N key and a template) and the one for a single text column,
    the usual key, which skips the general one's loops."""
    from dynamo_ingest.engine.layout import RECORD_NO, value_column
    from dynamo_ingest.spark.read import key_hash
    from pyspark.sql import functions as F

    columns = (Column("id", "bigint"), Column("name"), Column("day"))
    if key == "composite":
        keys = KeySchema(KeyAttribute("id", "N"), KeyAttribute("k", "S"))
        mapping = AttributeMapping.from_arguments(JobArguments(
            source_path="x", target_table="t", sort_key_template="{name}#{{x}}é{day}"))
    else:
        keys = KeySchema(KeyAttribute("name", "S"))
        mapping = AttributeMapping()
    parts = mapping.key_hash_parts(columns, keys)
    rng = random.Random(3)
    rows = [[rng.choice(NUMBER_TEXTS) or None, rng.choice(TEXTS) or None,
             rng.choice(TEXTS) or None] for _ in range(400)]
    frame = spark.createDataFrame(
        [(*row, index) for index, row in enumerate(rows)],
        [value_column(0), value_column(1), value_column(2), RECORD_NO])
    partitions = 7
    hashed = (frame.withColumn("h", key_hash(parts)).repartition(partitions, "h")
              .withColumn("p", F.spark_partition_id()).collect())
    python_hash = key_hasher(parts)

    for row in hashed:
        values = rows[row[RECORD_NO]]
        assert python_hash(values) == row["h"], values
        assert spark_partition(row["h"], partitions) == row["p"], values
        assert python_spark_partition(row["h"], partitions) == row["p"], values


def test_the_c_partition_hash_is_the_python_one() -> None:
    """mmh3's Murmur3 (the engine's per-record partition when installed) against the Python
    one that the Spark test above checks too: random hashes, the extremes, every count."""
    assert partitioner() is not python_spark_partition, "mmh3 is a dependency: installed"
    rng = random.Random(11)
    hashes = [rng.getrandbits(64) - (1 << 63) for _ in range(20_000)]
    hashes += [0, 1, -1, 42, (1 << 63) - 1, -(1 << 63), (1 << 31), -(1 << 31), (1 << 32)]
    for partitions in (1, 2, 7, 11, 64, 1000):
        assert [spark_partition(h, partitions) for h in hashes] == \
            [python_spark_partition(h, partitions) for h in hashes], partitions


def test_external_sort_holds_a_bounded_number_of_records(tmp_path: Path) -> None:
    rng = random.Random(5)
    # In record-number order, as the spill hands them over; many equal key hashes.
    records = [(rng.randrange(-50, 50), number, [str(number)], None)
               for number in range(20_000)]
    sorter = ExternalSort(tmp_path, run_records=500)

    merged = list(sorter.sorted(iter(records)))

    assert merged == sorted(records, key=lambda r: (r[0], r[1]))
    assert sorter.runs == 40
    # Runs of 500 while splitting, then one head per run while merging: never the input.
    assert sorter.max_held == 500
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("run_records", [200_000, 700])
def test_external_sort_in_chunks_orders_by_key_hash_then_record_number(
        tmp_path: Path, run_records: int) -> None:
    """In memory and through runs merged from disk: equal key hashes keep record order."""
    rng = random.Random(8)
    records = [(rng.choice([-(2**63), -1, 0, 3, 2**63 - 1]), number, [str(number)], None)
               for number in range(5_000)]
    chunks = [records[start:start + 333] for start in range(0, len(records), 333)]
    sorter = ExternalSort(tmp_path, run_records=run_records)

    out = list(sorter.sorted_chunks(iter(chunks)))

    assert [record for chunk in out for record in chunk] == sorted(
        records, key=lambda r: (r[0], r[1]))
    assert all(0 < len(chunk) <= 1000 for chunk in out)
    assert sorter.max_held <= run_records
    assert list(tmp_path.iterdir()) == []


def test_the_local_engine_imports_no_spark() -> None:
    code = ("import sys, dynamo_ingest.engine.local, dynamo_ingest.engine.partition_run; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pyspark'))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == "[]"


def test_local_engine_resumes_a_load_that_failed_midway(aws: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from dynamo_ingest.job import run

    generated = generate_csv(tmp_path / "orders.csv", 6000, seed=21, duplicate_every=31,
                             bad_every=250, line_ending="lf")
    register_catalog(schema_for_layout())
    create_table(TABLE, [("orderId", "S", "HASH")])
    args = JobArguments(source_path=str(generated.path), target_table=TABLE, engine="local",
                        catalog_database=DATABASE, catalog_table=CATALOG_TABLE, partitions=4,
                        checkpoint_every=2, max_retry_seconds=0.5)
    # Every write from the 60th request on is throttled until the plan changes: each
    # partition's writer gives up after its retry budget, as a killed one would stop.
    storm = FaultPlan(fail_after_requests=60, tables=(TABLE,))
    with dynamodb_double(aws, storm, monkeypatch) as double:
        first = run(args)
        written_first = double.stats.items_accepted
        double.set_plan(FaultPlan(tables=(TABLE,)))
        double.reset_stats()
        second = run(args)
        written_second = double.stats.items_accepted

    assert first.status == "FAILED", first.to_dict()
    assert written_first > 0
    assert second.status == "SUCCEEDED_WITH_REJECTS", second.error
    file_counts = second.extra["file_counts"]
    from dynamo_ingest_cli.datagen import expected_outcome

    oracle = expected_outcome(generated.path, key_columns=("orderId",),
                              column_types=attribute_types_for_layout())
    assert scan_table(TABLE) == oracle.items
    assert file_counts["items_written"] == len(oracle.items)
    assert file_counts["rows_rejected"] == len(oracle.rejected)
    assert second.counts.rows_skipped_by_resume > 0
    # Only what followed each partition's last checkpoint is written twice.
    rewritten = written_first + written_second - len(oracle.items)
    assert 0 <= rewritten <= 4 * 2 * 25 + 4 * 25, rewritten
    assert json.dumps(second.to_dict())


def test_local_engine_rejects_a_record_too_long_to_hold(aws: str, tmp_path: Path) -> None:
    from dynamo_ingest.engine.records import DEFAULT_RECORD_LIMIT
    from dynamo_ingest.job import run

    source = tmp_path / "long.csv"
    # Record 2 opens a quote it never closes before the limit: a runaway value.
    source.write_bytes(b"id,name,amount\n1,a,1.5\n2,\"" + b"x" * (DEFAULT_RECORD_LIMIT + 10)
                       + b"\",2\n3,c,3\n")
    register_catalog(CORPUS_COLUMNS)
    create_table(TABLE, [("id", "S", "HASH")])

    report = run(JobArguments(source_path=str(source), target_table=TABLE, engine="local",
                              catalog_database=DATABASE, catalog_table=CATALOG_TABLE,
                              partitions=2))

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert sorted(scan_table(TABLE)) == [("1",), ("3",)]
    assert (report.counts.rows_read, report.counts.rows_rejected) == (3, 1)
    assert report.counts.identity_holds
    rejects = read_rejects(report.rejects_path or "")
    assert [row[:1] for row in rejects[1:]] == [["2"]]
    assert "is over 4 MiB" in rejects[1][1]
    # The file's own counts (over every attempt) add up too, the splitter's reject included.
    file_counts = report.extra["file_counts"]
    assert (file_counts["rows_read"], file_counts["items_written"],
            file_counts["rows_rejected"], file_counts["duplicate_rows"]) == (3, 2, 1, 0)
    # Nothing but the rejects file is left beside it: no part of any partition or splitter.
    rejects_path = Path(report.rejects_path or "")
    assert sorted(p.name for p in rejects_path.parent.iterdir()
                  if p.name.startswith(rejects_path.name)) == [rejects_path.name]


@pytest.mark.spark
def test_checkpoints_of_one_engine_are_not_resumed_by_the_other(
        aws: str, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dynamo_ingest.job import run

    generated = generate_csv(tmp_path / "orders.csv", 2000, seed=4, duplicate_every=None,
                             bad_every=None, line_ending="lf")
    register_catalog(schema_for_layout())
    create_table(TABLE, [("orderId", "S", "HASH")])
    args = JobArguments(source_path=str(generated.path), target_table=TABLE, engine="spark",
                        catalog_database=DATABASE, catalog_table=CATALOG_TABLE, partitions=2,
                        checkpoint_every=1, max_retry_seconds=0.5)
    with dynamodb_double(aws, FaultPlan(fail_after_requests=20, tables=(TABLE,)),
                         monkeypatch) as double:
        first = run(args, Runtime(spark=spark))
        double.set_plan(FaultPlan(tables=(TABLE,)))
        second = run(replace(args, engine="local"))

    assert first.status == "FAILED", first.to_dict()
    assert second.status == "SUCCEEDED", second.error
    # The Spark run's checkpoints were dropped: the local run wrote every row itself.
    assert second.counts.rows_skipped_by_resume == 0
    assert second.counts.items_written == 2000
    assert len(scan_table(TABLE)) == 2000
