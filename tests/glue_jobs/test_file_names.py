"""Names people give files load like any other: colons, spaces, glob characters, '%', '#',
unicode, leading '-', '_' or '.', locally, staged from ``s3://`` and through the event flow."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import LedgerStatus
from dynamo_ingest.control.locations import default_rejects_path
from dynamo_ingest.control.storage import Storage, resolve_source, spark_safe_name, split_s3
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.errors import FileLayoutError
from dynamo_ingest.job import run
from dynamo_ingest.spark.read import is_unreadable_path, read_records
from dynamo_ingest.spark.runtime import Runtime

from crawlers.local_crawler import register_table
from dynamo_ingest_cli.local_flow import JobRunner
from local_aws.orchestration import run_local_flow
from tests.conftest import deploy_local_flow
from tests.glue_jobs.conftest import TABLE, create_table, read_rejects, scan_table

pytestmark = pytest.mark.spark

# Every one of these broke Hadoop's reading of the path (URI parsing, globbing, hidden files).
NAMES = ["orders 2024-05-01T10:00:00.csv", "orders[1].csv", "orders1.csv", "a*b.csv", "q?.csv",
         "x{1,2}.csv", "p%20c.csv", "h#1.csv", "été 注文.csv", "-lead.csv", "_under.csv",
         ".dot.csv"]


def _csv(rows: list[tuple[str, str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "name"])
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def test_local_files_with_any_name_load_their_own_rows(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    # All in one folder: a pattern like orders[1].csv would match orders1.csv, and one bad
    # name used to fail its neighbours' runs.
    for number, name in enumerate(NAMES):
        (tmp_path / name).write_bytes(_csv([(str(number), name), ("", "no key")]))
    outcomes = {}
    for name in NAMES:
        report = run_job(source_path=str(tmp_path / name))
        outcomes[name] = (report.status, report.counts.rows_read, report.error)
    assert outcomes == dict.fromkeys(NAMES, ("SUCCEEDED_WITH_REJECTS", 2, None))
    items = scan_table(TABLE)
    assert {key: item["name"]["S"] for (key,), item in items.items()} == {
        str(number): name for number, name in enumerate(NAMES)}
    for name in NAMES:
        rejects = read_rejects(tmp_path / "rejects" / f"{name}.rejects.csv")
        assert (rejects[1][0], rejects[1][2:]) == ("2", ["", "no key"])


def test_messages_name_the_users_file_not_the_link_spark_reads(run_job: Any,
                                                               tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "orders 10:00 [1].csv"
    source.write_bytes(b"")  # an empty file fails the run, naming the file
    report = run_job(source_path=str(source))
    assert report.status == "FAILED"
    assert str(source) in (report.error or "")


@pytest.mark.parametrize("name", ["orders 2024-05-01T10:00:00.csv", "orders[1].csv",
                                  "_under.csv", "h#1 {x}.csv"])
def test_s3_objects_with_any_name_load_when_staged(run_job: Any, name: str) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    key = f"incoming/2024-05-01T10:00:00/{name}"
    s3.put_object(Bucket="landing", Key=key, Body=_csv([("1", name)]))
    report = run_job(source_path=f"s3://landing/{key}")
    assert (report.status, report.counts.items_written, report.error) == ("SUCCEEDED", 1, None)
    assert scan_table(TABLE)[("1",)]["name"]["S"] == name


def test_spark_reads_a_path_literally_as_glue_does_with_s3_uris(spark: Any,
                                                                tmp_path: Path) -> None:
    # Glue hands Spark the s3:// URI itself: glob characters must not make it a pattern.
    (tmp_path / "orders[1].csv").write_bytes(_csv([("1", "brackets")]))
    (tmp_path / "orders1.csv").write_bytes(_csv([("1", "the file the pattern matches")]))
    schema = CsvSchema((Column("id", "string"), Column("name", "string")))
    frame = read_records(spark, str(tmp_path / "orders[1].csv"), schema)
    assert [row["c1"] for row in frame.collect()] == ["brackets"]
    # A name Hadoop hides is refused, not read as an empty file.
    (tmp_path / "_under.csv").write_bytes(_csv([("1", "hidden")]))
    with pytest.raises(FileLayoutError, match=r"_under\.csv.*begin with '_' or '\.'"):
        read_records(spark, str(tmp_path / "_under.csv"), schema, "s3://b/_under.csv")


@pytest.mark.parametrize(("name", "copied"), [("_under.csv", True), (".dot.csv.gz", True),
                                              ("orders 10:00.csv", True),
                                              ("orders[1] {x} #%.csv", False)])
def test_in_glue_a_name_hadoop_cannot_read_is_read_through_a_copy(aws: str, name: str,
                                                                  copied: bool) -> None:
    # Glue's Spark reads s3:// itself: a name it cannot read literally gets a server-side
    # copy under a safe name, beside the rejects file; other names are read in place.
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    key = f"incoming/2024/{name}"
    s3.put_object(Bucket="landing", Key=key, Body=b"id,name\n1,x\n")
    folder = default_rejects_path("landing", key) + ".source/"
    source = resolve_source(f"s3://landing/{key}", AwsConfig.from_environ(), stage_s3=False,
                            copy_folder=folder)
    try:
        if not copied:
            assert source.spark_path == f"s3://landing/{key}"
            return
        assert source.spark_path == folder + spark_safe_name(name)
        copy_bucket, copy_key = split_s3(source.spark_path)
        assert s3.get_object(Bucket=copy_bucket, Key=copy_key)["Body"].read() == (
            b"id,name\n1,x\n")
        assert (source.uri, source.key) == (f"s3://landing/{key}", key)  # messages, ledger
    finally:
        source.discard_staged_copy(Storage(AwsConfig.from_environ()))
    listed = s3.list_objects_v2(Bucket="landing", Prefix="error/")
    assert "Contents" not in listed, "the copy must not outlive the run"


def test_a_path_hadoop_cannot_parse_is_recognised_as_permanent(spark: Any,
                                                               tmp_path: Path) -> None:
    # What the job now avoids by reading through a safe name: the local file system's
    # checksum path of a name with ':' is not a URI. The job reports such a failure as not
    # retryable, since every run would meet the same name.
    path = tmp_path / "orders 10:00.csv"
    path.write_bytes(_csv([("1", "colon")]))
    schema = CsvSchema((Column("id", "string"), Column("name", "string")))
    with pytest.raises(Exception) as caught:  # Py4J's error, whatever its class
        read_records(spark, str(path), schema).collect()
    assert is_unreadable_path(caught.value)
    assert not is_unreadable_path(RuntimeError("Connection refused: localhost:4566"))


def test_the_event_flow_loads_and_completes_a_key_with_such_a_name(aws: str, spark: Any) -> None:
    deployment = deploy_local_flow()
    register_table(boto3.client("glue"), deployment.database, deployment.catalog_table,
                   CsvSchema((Column("orderId", "string"), Column("total", "double"))),
                   f"s3://{deployment.bucket}/schema/")
    name = "orders 2024-05-01T10:00:00 [1] {a,b} #5 100% été+c.csv"
    key = f"incoming/2024/{name}"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=deployment.bucket, Key=key, Body=b"orderId,total\nA1,5\n,6\nA2,7\n")

    # run_local_flow sends the key URL-encoded, '+' for a space, as S3 does.
    result = run_local_flow(
        s3=s3, glue=boto3.client("glue"), dynamodb=boto3.client("dynamodb"),
        bucket=deployment.bucket, key=key, trigger_settings=deployment.trigger_settings(),
        callback_settings=deployment.callback_settings(),
        run_job=JobRunner(Runtime(spark=spark), run), aws_environ={})

    assert result.record.status == LedgerStatus.SUCCEEDED_WITH_REJECTS, result.record.error
    assert result.exit_codes == (0,)
    assert result.file_location == f"s3://{deployment.bucket}/complete/2024/{name}"
    assert set(scan_table(deployment.target_table)) == {("A1",), ("A2",)}
    rejects = s3.get_object(Bucket=deployment.bucket, Key=f"error/2024/{name}.rejects.csv")
    assert rejects["Body"].read().decode().splitlines()[1].startswith("2,")
