"""Compressed input (gzip, bzip2, zstd) loads everywhere a file is read: both engines of
``run``, from a local path and from ``s3://``, ``estimate``, ``crawl`` and the event flow;
a file's compression is what its bytes say, whatever its name says."""

from __future__ import annotations

import bz2
import gzip
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
import zstandard
from dynamo_ingest.control.ledger import LedgerStatus
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.catalog import Column, CsvSchema
from dynamo_ingest.core.errors import FileLayoutError
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.compression import recognise
from dynamo_ingest.engine.source import (
    DecompressionLimitError,
    SourceLimits,
    SourceOpener,
    measure_expansion,
    open_source,
)
from dynamo_ingest.estimate import estimate_source
from dynamo_ingest.job import run
from dynamo_ingest.spark.read import (
    partitioned_for_writing,
    read_records,
    spark_reads_itself,
    split_in_one_task,
)
from dynamo_ingest.spark.runtime import Runtime

from crawlers.local_crawler import infer_schema, register_table
from dynamo_ingest_cli.local_flow import JobRunner
from local_aws.orchestration import run_local_flow
from tests.conftest import deploy_local_flow
from tests.glue_jobs.conftest import TABLE, create_table, scan_table

COMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}
SUFFIX = {"gzip": ".gz", "bzip2": ".bz2", "zstd": ".zst"}
ENGINES = ("spark", "local")


def orders_csv(rows: int = 300) -> bytes:
    """A CSV with quoted values, line breaks inside quotes, a duplicate and a bad row."""
    lines = ["id,name,total"]
    for n in range(rows):
        name = f'"line {n}\nwith ""quotes"", a comma"' if n % 7 == 0 else f"name {n}"
        lines.append(f"k{n % 250},{name},{n}.5")
    lines.append("bad,row")  # too few fields: rejected
    return ("\n".join(lines) + "\n").encode("utf-8")


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load(engine: str, spark: Any, source_path: str) -> tuple[Any, dict[Any, Any]]:
    """Run the job into a fresh table; its report and the table's items."""
    create_table(TABLE, [("id", "S", "HASH")])
    try:
        report = run(JobArguments(source_path=source_path, target_table=TABLE, engine=engine,
                                  partitions=4), Runtime(spark=spark))
        return report, scan_table(TABLE)
    finally:
        boto3.client("dynamodb").delete_table(TableName=TABLE)


# -- recognising and opening ---------------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(COMPRESS))
@pytest.mark.parametrize("name", ["orders.csv{suffix}", "ORDERS.CSV{upper}", "orders.csv"])
def test_open_source_reads_the_text_whatever_the_name_says(codec: str, name: str,
                                                           tmp_path: Path) -> None:
    data = orders_csv()
    path = write(tmp_path, name.format(suffix=SUFFIX[codec], upper=SUFFIX[codec].upper()),
                 COMPRESS[codec](data))
    assert recognise(path.read_bytes()[:16], str(path)).name == codec  # type: ignore[union-attr]
    with open_source(str(path)) as stream:
        assert stream.read() == data


def test_a_multi_member_gzip_is_read_to_its_end(tmp_path: Path) -> None:
    # What `cat a.gz b.gz` and some exporters write: gunzip reads every member.
    path = write(tmp_path, "orders.csv.gz",
                 gzip.compress(b"id,name\n1,a\n") + gzip.compress(b"2,b\n"))
    with open_source(str(path)) as stream:
        assert stream.read() == b"id,name\n1,a\n2,b\n"


def test_a_plain_file_named_gz_is_read_as_plain_text(tmp_path: Path) -> None:
    path = write(tmp_path, "orders.csv.gz", b"id,name\n1,a\n")
    with open_source(str(path)) as stream:
        assert stream.read() == b"id,name\n1,a\n"


def test_a_zip_archive_is_named_as_such(tmp_path: Path) -> None:
    path = write(tmp_path, "orders.csv", b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(FileLayoutError, match=rf"{path} is a zip archive .*\(unzip\)"):
        open_source(str(path))


def test_a_truncated_gzip_fails_naming_the_damage(tmp_path: Path) -> None:
    path = write(tmp_path, "orders.csv.gz", gzip.compress(orders_csv())[:-30])
    with pytest.raises(FileLayoutError, match="compressed data is cut short"), \
            open_source(str(path)) as stream:
        stream.read()


def test_a_truncated_gzip_from_s3_is_named_by_its_uri(aws: str) -> None:
    # The message names the object, not the "s3" before the URI's first colon.
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="exports")
    s3.put_object(Bucket="exports", Key="probe/t.csv.gz",
                  Body=gzip.compress(orders_csv())[:-30])
    uri = "s3://exports/probe/t.csv.gz"
    with pytest.raises(FileLayoutError) as failure, open_source(uri, s3=s3) as stream:
        stream.read()
    assert str(failure.value) == (f"{uri}: the compressed data is cut short; upload the "
                                  "file again")


def test_text_that_starts_like_a_signature_is_still_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "bz.csv", b"BZh9,name\n1,a\n")  # 'BZh' and a digit, no block magic
    assert [c.name for c in infer_schema(path).columns] == ["BZh9", "name"]


def test_the_text_size_is_extrapolated_from_a_prefix(tmp_path: Path) -> None:
    data = orders_csv(40_000)
    path = write(tmp_path, "orders.csv.gz", gzip.compress(data))
    stored = path.stat().st_size
    measured = measure_expansion(str(path), probe_bytes=stored // 4)
    assert measured.estimated
    assert measured.stored_bytes == stored
    assert abs(measured.text_bytes - len(data)) < 0.25 * len(data)
    whole = measure_expansion(str(path), probe_bytes=stored * 2)
    assert (whole.text_bytes, whole.estimated) == (len(data), False)
    plain = write(tmp_path, "orders.csv", data)
    assert measure_expansion(str(plain)).text_bytes == len(data)


# -- the engines ----------------------------------------------------------------------------


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("codec", sorted(COMPRESS))
def test_a_compressed_file_loads_exactly_the_table_of_the_plain_file(
        codec: str, engine: str, aws: str, spark: Any, tmp_path: Path) -> None:
    data = orders_csv()
    plain_report, plain_table = load(engine, spark, str(write(tmp_path, "orders.csv", data)))
    assert plain_report.status == "SUCCEEDED_WITH_REJECTS", plain_report.error
    labelled = write(tmp_path, f"orders.csv{SUFFIX[codec]}", COMPRESS[codec](data))
    report, table = load(engine, spark, str(labelled))
    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert table == plain_table
    assert report.counts == plain_report.counts
    assert report.extra["compression"] == codec
    assert report.extra["source_text_bytes"] == len(data)  # small: the probe read it all


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
def test_a_mislabelled_gzip_file_loads(engine: str, aws: str, spark: Any,
                                       tmp_path: Path) -> None:
    data = orders_csv()
    _, plain_table = load(engine, spark, str(write(tmp_path, "orders.csv", data)))
    report, table = load(engine, spark, str(write(tmp_path, "export.csv", gzip.compress(data))))
    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert table == plain_table


@pytest.mark.spark
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_compressed_s3_object_loads(codec: str, engine: str, aws: str, spark: Any,
                                      tmp_path: Path) -> None:
    data = orders_csv()
    _, plain_table = load(engine, spark, str(write(tmp_path, "orders.csv", data)))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="exports")
    key = f"2024/orders.csv{SUFFIX[codec]}"
    s3.put_object(Bucket="exports", Key=key, Body=COMPRESS[codec](data))
    report, table = load(engine, spark, f"s3://exports/{key}")
    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    assert table == plain_table


def test_spark_reads_gzip_and_bzip2_itself_and_nothing_its_name_misstates() -> None:
    gzip_codec, bzip2_codec, zstd_codec = (recognise(COMPRESS[c](b"x")[:16], "f")
                                           for c in ("gzip", "bzip2", "zstd"))
    assert spark_reads_itself("/d/source.csv.gz", gzip_codec)
    assert spark_reads_itself("/d/source.CSV.BZ2", bzip2_codec)
    assert spark_reads_itself("/d/source.csv", None)
    assert not spark_reads_itself("/d/source.csv.zst", zstd_codec)  # no native zstd
    assert not spark_reads_itself("/d/source.csv", gzip_codec)  # mislabelled
    assert not spark_reads_itself("/d/source.csv.gz", None)  # plain, named .gz


@pytest.mark.spark
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_one_task_reads_a_compressed_file_and_every_partition_gets_rows(
        codec: str, spark: Any, tmp_path: Path) -> None:
    path = write(tmp_path, f"orders.csv{SUFFIX[codec]}", COMPRESS[codec](orders_csv(2000)))
    schema = CsvSchema((Column("id"), Column("name"), Column("total")))
    if codec == "gzip":
        records = read_records(spark, str(path), schema)
    else:
        records = split_in_one_task(spark, SourceOpener(str(path), str(path)), schema)
    assert records.rdd.getNumPartitions() == 1
    key_parts = AttributeMapping().key_hash_parts(
        schema.columns, KeySchema(KeyAttribute("id", "S")))
    spread = partitioned_for_writing(records, key_parts, 4)
    sizes = spread.rdd.glom().map(len).collect()
    assert len(sizes) == 4
    assert min(sizes) > 0
    assert sum(sizes) == 2001


# -- estimate, crawl and the event flow --------------------------------------------------------


@pytest.mark.parametrize("codec", sorted(COMPRESS))
def test_estimate_and_crawl_read_a_compressed_file_as_its_text(codec: str,
                                                               tmp_path: Path) -> None:
    data = orders_csv()
    plain = write(tmp_path, "orders.csv", data)
    packed = write(tmp_path, f"orders.csv{SUFFIX[codec]}", COMPRESS[codec](data))
    assert infer_schema(packed) == infer_schema(plain)
    schema = infer_schema(plain)
    keys = KeySchema(KeyAttribute("id", "S"))
    expected = estimate_source(plain, schema=schema, key_schema=keys)
    found = estimate_source(packed, schema=schema, key_schema=keys)
    assert (found.rows, found.items, found.duplicate_rows, found.rejected_rows,
            found.wcu_total) == (expected.rows, expected.items, expected.duplicate_rows,
                                 expected.rejected_rows, expected.wcu_total)
    assert (found.compression, found.text_bytes) == (codec, len(data))
    assert found.source_bytes == packed.stat().st_size
    assert found.notes[0].startswith(f"{codec}-compressed: its text is {len(data):,} bytes")


def test_the_crawler_samples_a_compressed_s3_object(aws: str) -> None:
    from crawlers.local_crawler import crawl

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="exports")
    s3.put_object(Bucket="exports", Key="x/orders.csv.bz2", Body=bz2.compress(orders_csv()))
    schema = crawl(boto3.client("glue"), s3, "s3://exports/x/orders.csv.bz2", "db", "t")
    assert [(c.name, c.type) for c in schema.columns] == [
        ("id", "string"), ("name", "string"), ("total", "double")]


@pytest.mark.spark
def test_the_event_flow_loads_and_completes_an_uploaded_gzip_file(aws: str, spark: Any) -> None:
    deployment = deploy_local_flow()
    register_table(boto3.client("glue"), deployment.database, deployment.catalog_table,
                   CsvSchema((Column("orderId", "string"), Column("total", "double"))),
                   f"s3://{deployment.bucket}/schema/")
    key = "incoming/2024/x.csv.gz"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=deployment.bucket, Key=key,
                  Body=gzip.compress(b"orderId,total\nA1,5\nA2,7\n"))
    result = run_local_flow(
        s3=s3, glue=boto3.client("glue"), dynamodb=boto3.client("dynamodb"),
        bucket=deployment.bucket, key=key, trigger_settings=deployment.trigger_settings(),
        callback_settings=deployment.callback_settings(),
        run_job=JobRunner(Runtime(spark=spark), run), aws_environ={})
    assert result.record.status == LedgerStatus.SUCCEEDED, result.record.error
    assert result.file_location == f"s3://{deployment.bucket}/complete/2024/x.csv.gz"
    assert set(scan_table(deployment.target_table)) == {("A1",), ("A2",)}
    body = s3.get_object(Bucket=deployment.bucket, Key="complete/2024/x.csv.gz")["Body"]
    assert gzip.GzipFile(fileobj=io.BytesIO(body.read())).read().startswith(b"orderId")


# -- hostile input stays bounded --------------------------------------------------------------

# Run in a child so that its peak memory is its own: the job in-process with the local engine,
# the report and the peak RSS (the child's and its worker processes') as one JSON line. The
# child's own peak is its VmHWM, not RUSAGE_SELF's ru_maxrss: Linux carries the peak of the
# process that started it (pytest, which grows over a session) into a child's ru_maxrss.
CHILD = """
import json, re, resource, sys
from dynamo_ingest.core.arguments import parse_job_arguments
from dynamo_ingest.job import run
report = run(parse_job_arguments(sys.argv[1:]))
with open("/proc/self/status") as status:
    own = int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read()).group(1))
peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(json.dumps({"status": report.status, "error": report.error,
                  "retryable": report.retryable, "peak_kib": peak}))
"""
PEAK_BOUND_KIB = 1024 * 1024  # 1 GiB


def write_gzip_bomb(path: Path, text_gib: int, *, prefix: bytes = b"",
                    row: bytes = b"1,a\n") -> int:
    """A gzip file of ``prefix`` then ``text_gib`` GiB of one repeated ``row``, written as
    concatenated members of one compressed 64 MiB block (a valid gzip file that gunzip
    expands fully), so the test never holds or compresses the whole text. Its text size."""
    block = row * (64 * 1024 * 1024 // len(row))
    member = gzip.compress(block, compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(b"id,name\n" + prefix))
        for _ in range(text_gib * 16):
            out.write(member)
    return 8 + len(prefix) + text_gib * 16 * len(block)


def run_child(*argv: str) -> dict[str, Any]:
    import json
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_gzip_bomb_fails_before_loading_with_bounded_memory(aws: str, tmp_path: Path) -> None:
    bomb = tmp_path / "orders.csv.gz"
    text = write_gzip_bomb(bomb, 10)
    assert bomb.stat().st_size < 12 * 1024 * 1024  # 10 MB …
    assert text > 10 * 2**30  # … that expand to 10 GiB
    create_table(TABLE, [("id", "S", "HASH")])
    result = run_child("--source_path", str(bomb), "--target_table", TABLE, "--engine", "local")
    assert result["status"] == "FAILED"
    assert re.match(rf"{re.escape(str(bomb))}: its gzip data expands [0-9,]+× in its first ",
                    result["error"]), result["error"]
    assert "a decompression bomb? If the file is genuine, raise --max_expansion" in (
        result["error"])
    assert result["retryable"] is False
    assert result["peak_kib"] < PEAK_BOUND_KIB
    assert scan_table(TABLE) == {}


def test_a_bomb_behind_a_plausible_start_fails_while_streaming(aws: str, tmp_path: Path) -> None:
    # The first 4 MB expand like a real CSV, so only counting the bytes read catches the rest.
    import os

    rows = b"".join(b"%d,%s\n" % (n, os.urandom(24).hex().encode()) for n in range(200_000))
    bomb = tmp_path / "orders.csv.gz"
    # Long rows: the splitter reaches the bound after thousands of records, not millions.
    write_gzip_bomb(bomb, 1, prefix=rows, row=b"1," + b"a" * 1021 + b"\n")
    create_table(TABLE, [("id", "S", "HASH")])
    result = run_child("--source_path", str(bomb), "--target_table", TABLE, "--engine", "local",
                       "--max_uncompressed_bytes", str(64 * 2**20))
    assert result["status"] == "FAILED"
    assert result["error"].startswith(f"{bomb}: its gzip data expands past 64.0 MiB")
    assert "--max_uncompressed_bytes 67108864" in result["error"]
    assert result["peak_kib"] < PEAK_BOUND_KIB
    assert scan_table(TABLE) == {}


def write_late_expanding_gzip(path: Path) -> int:
    """A gzip file whose first ~5 MB stored look like a real CSV (random values, about 2×)
    and whose next ~17 MB expand 500× (8 GiB of one row of zeros): the probe of the
    first 4 MB sees a plain file. The stored size of its plausible start."""
    import os

    rows = b"".join(b"%d,%s\n" % (n, os.urandom(24).hex().encode()) for n in range(200_000))
    write_gzip_bomb(path, 8, prefix=rows, row=b"1," + b"0" * 1021 + b"\n")
    start = len(gzip.compress(b"id,name\n" + rows))
    assert start > 4 * 1024 * 1024
    assert path.stat().st_size < 32 * 1024 * 1024
    return start


def test_a_gzip_that_expands_late_is_stopped_as_it_expands(tmp_path: Path) -> None:
    bomb = tmp_path / "orders.csv.gz"
    start = write_late_expanding_gzip(bomb)
    read = [0]

    def read_all() -> None:
        with open_source(str(bomb), limits=SourceLimits(max_expansion=20)) as stream:
            while chunk := stream.read(1024 * 1024):
                read[0] += len(chunk)

    with pytest.raises(DecompressionLimitError) as refused:
        read_all()
    assert re.match(rf"{re.escape(str(bomb))}: its gzip data expands 2[0-9.]+× in its first "
                    r"[0-9.]+ MiB stored \([0-9.]+ MiB of text\), over --max_expansion 20: ",
                    str(refused.value)), refused.value
    # Bound by bytes: at most 20× the stored bytes read (the start, and the few blocks that
    # tipped the ratio), not 20× the whole file (about 450 MB), which is what could be spilled.
    assert read[0] < 20 * (start + 2 * 1024 * 1024), read[0]


def test_a_run_of_a_late_expanding_gzip_fails_naming_file_ratio_and_option(
        aws: str, tmp_path: Path) -> None:
    bomb = tmp_path / "orders.csv.gz"
    write_late_expanding_gzip(bomb)
    create_table(TABLE, [("id", "S", "HASH")])
    result = run_child("--source_path", str(bomb), "--target_table", TABLE, "--engine", "local",
                       "--max_expansion", "20")
    assert result["status"] == "FAILED"
    assert re.match(rf"{re.escape(str(bomb))}: its gzip data expands 2[0-9.]+× in its first ",
                    result["error"]), result["error"]
    assert "over --max_expansion 20: a decompression bomb? If the file is genuine, raise " \
           "--max_expansion" in result["error"]
    assert result["retryable"] is False
    assert result["peak_kib"] < PEAK_BOUND_KIB


@pytest.mark.spark
def test_the_spark_engine_refuses_a_bomb_before_spark_reads_it(run_job: Any,
                                                               tmp_path: Path) -> None:
    bomb = tmp_path / "orders.csv.gz"
    write_gzip_bomb(bomb, 2)
    create_table(TABLE, [("id", "S", "HASH")])
    report = run_job(source_path=str(bomb), engine="spark")
    assert report.status == "FAILED"
    assert "a decompression bomb?" in (report.error or "")
    assert report.counts.rows_read == 0


def test_the_local_engine_refuses_a_spill_its_scratch_folder_cannot_hold(tmp_path: Path) -> None:
    import shutil

    from dynamo_ingest.engine.local import ScratchSpaceError, check_scratch_space

    free = shutil.disk_usage(tmp_path).free
    check_scratch_space(tmp_path, 1024, "orders.csv.gz")  # fits
    with pytest.raises(ScratchSpaceError, match=r"orders.csv.gz: the in-process engine spills "
                                                r".* give it more space .* --engine spark"):
        check_scratch_space(tmp_path, free + 2**40, "orders.csv.gz")
    assert ScratchSpaceError.retryable is False
