"""The rejects file: in record order across partitions and sorted runs, replaced (or removed)
by the next run of the same source, and created with a normal file's mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dynamo_ingest.control.storage import Storage
from dynamo_ingest.engine.rejects import RejectsFile, merge_parts, merge_sorted, rejects_header

from tests.glue_jobs.conftest import TABLE, create_table, read_rejects


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()


def test_a_partition_hands_over_its_rejects_sorted_over_several_runs() -> None:
    rejects = RejectsFile(run_bytes=64)  # a run every few records: several runs to merge
    numbers = [17, 3, 250, 4, 99, 1, 42, 8, 7, 120, 2, 60]
    for number in numbers:
        # A value with a newline and bytes that are not UTF-8 must come out as they went in.
        rejects.add(number, "bad", [f"v{number}", "line\nbreak", "caf\udcc3"])
    part = rejects.close()
    assert part is not None
    try:
        rows = read_rejects(part)
        assert [int(row[0]) for row in rows] == sorted(numbers)
        assert all(row[2:] == [f"v{row[0]}", "line\nbreak", "caf\udcc3"] for row in rows)
        assert rejects.count == len(numbers)
    finally:
        part.unlink()


def test_more_sorted_files_than_the_fan_in_merge_in_passes(tmp_path: Path) -> None:
    inputs = []
    for index in range(7):
        path = tmp_path / f"in-{index}.csv"
        path.write_text("".join(f"{n},r\n" for n in range(index, 70, 7)), encoding="utf-8")
        inputs.append(path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        merge_sorted(inputs, handle, scratch, fan_in=3)
    assert _lines(out) == [f"{n},r" for n in range(70)]
    assert len(list(scratch.iterdir())) == 3  # 7 inputs → 3 merged files → the output


def test_nothing_rejected_hands_over_no_file() -> None:
    assert RejectsFile().close() is None


def test_parts_local_and_on_s3_merge_in_record_order_under_the_header(tmp_path: Path,
                                                                      aws: str) -> None:
    import boto3
    from dynamo_ingest.core.aws import AwsConfig

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    parts = []
    for index, numbers in enumerate([[1, 5, 9], [2, 3, 10], [4, 6, 7, 8]]):
        body = "".join(f"{n},reason {n},x\n" for n in numbers)
        if index == 1:
            s3.put_object(Bucket="landing", Key="error/parts/part-1.csv", Body=body.encode())
            parts.append("s3://landing/error/parts/part-1.csv")
        else:
            part = tmp_path / f"part-{index}.csv"
            part.write_text(body, encoding="utf-8")
            parts.append(str(part))
    merge_parts(Storage(AwsConfig.from_environ()), rejects_header(["id"]), parts,
                "s3://landing/error/orders.csv.rejects.csv")
    merged = s3.get_object(Bucket="landing", Key="error/orders.csv.rejects.csv")["Body"].read()
    assert merged.decode().splitlines() == [
        "record_no,reason,id", *(f"{n},reason {n},x" for n in range(1, 11))]


def _bad_rows_file(path: Path, rows: int, bad: set[int]) -> Path:
    """``rows`` data records with their own keys (so they hash to every partition); the ones
    numbered in ``bad`` (1-based) hold a field too many."""
    lines = ["id,amount"]
    lines += [f"k{n:04d},{n}" + (",extra" if n in bad else "") for n in range(1, rows + 1)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def umask_022() -> Iterator[None]:
    """A usual umask for the run (the test's own setting is restored afterwards)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.spark
def test_the_rejects_file_is_in_record_order_across_partitions(run_job: Any,
                                                              tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    bad = set(range(3, 400, 7))
    source = _bad_rows_file(tmp_path / "orders.csv", 400, bad)
    report = run_job(source_path=str(source), partitions=6)
    assert report.counts.rows_rejected == len(bad)
    rows = read_rejects(report.rejects_path or "")[1:]
    assert [int(row[0]) for row in rows] == sorted(bad)


@pytest.mark.spark
def test_the_rejects_file_has_a_normal_files_mode(run_job: Any, tmp_path: Path,
                                                 umask_022: None) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    report = run_job(source_path=str(_bad_rows_file(tmp_path / "orders.csv", 20, {5})))
    # 0666 less the umask, like any file the user's tools write, not a temporary file's 0600.
    assert stat.S_IMODE(Path(report.rejects_path or "").stat().st_mode) == 0o644


@pytest.mark.spark
def test_a_rerun_with_fewer_rejects_replaces_the_file(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "orders.csv"
    first = run_job(source_path=str(_bad_rows_file(source, 60, {5, 20, 33, 47, 58})),
                    partitions=4)
    assert first.counts.rows_rejected == 5
    fewer = run_job(source_path=str(_bad_rows_file(source, 60, {20})), partitions=4)
    assert fewer.counts.rows_rejected == 1
    assert [row[0] for row in read_rejects(fewer.rejects_path or "")[1:]] == ["20"]


@pytest.mark.spark
def test_a_clean_rerun_removes_the_earlier_rejects_file(run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "orders.csv"
    rejects_folder = tmp_path / "rejects"
    first = run_job(source_path=str(_bad_rows_file(source, 60, {5, 33})), partitions=4)
    assert first.rejects_path == str(rejects_folder / "orders.csv.rejects.csv")

    clean = run_job(source_path=str(_bad_rows_file(source, 60, set())), partitions=4)

    assert (clean.status, clean.rejects_path) == ("SUCCEEDED", None)
    # Neither the file nor a part a later run could merge into its own file stays behind.
    assert not rejects_folder.exists(), sorted(rejects_folder.rglob("*"))


@pytest.mark.spark
def test_a_clean_run_succeeds_when_the_rejects_location_cannot_be_cleaned(
        run_job: Any, tmp_path: Path) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = _bad_rows_file(tmp_path / "orders.csv", 10, set())
    # Nothing to write there; removing what an earlier run may have left is best effort.
    report = run_job(source_path=str(source), rejects_path="s3://no-such-bucket/x.rejects.csv")
    assert (report.status, report.error, report.rejects_path) == ("SUCCEEDED", None, None)
