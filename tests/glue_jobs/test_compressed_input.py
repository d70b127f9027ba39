"""A compressed file is named as such (issue: a gzip file was called "not UTF-8"), by its
signature whatever its name says, until compressed input loads."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import Any

import pytest
from dynamo_ingest.core.errors import FileLayoutError

from crawlers.local_crawler import infer_schema
from tests.glue_jobs.conftest import create_table

CSV = b"id,name\n1,a\n2,b\n"
# zstd has no codec in Python 3.11's standard library: a frame's signature and some bytes.
ZSTD_FRAME = b"\x28\xb5\x2f\xfd\x24\x10\x81\x00\x00" + CSV

COMPRESSED = {"gzip": gzip.compress(CSV), "bzip2": bz2.compress(CSV), "zstd": ZSTD_FRAME}


@pytest.mark.parametrize("codec", sorted(COMPRESSED))
@pytest.mark.parametrize("name", ["orders.csv.{ext}", "orders.csv"])  # labelled and not
def test_the_crawler_names_the_compression(codec: str, name: str, tmp_path: Path) -> None:
    ext = {"gzip": "gz", "bzip2": "bz2", "zstd": "zst"}[codec]
    path = tmp_path / name.format(ext=ext)
    path.write_bytes(COMPRESSED[codec])
    with pytest.raises(FileLayoutError, match=rf"{path} is {codec}-compressed"):
        infer_schema(path)


def test_text_that_starts_like_a_signature_is_still_csv(tmp_path: Path) -> None:
    path = tmp_path / "bz.csv"
    path.write_bytes(b"BZh9,name\n1,a\n")  # 'BZh' and a digit, but no bzip2 block magic
    assert [c.name for c in infer_schema(path).columns] == ["BZh9", "name"]


@pytest.mark.spark
@pytest.mark.parametrize("codec", ["gzip", "bzip2"])
def test_a_run_of_a_compressed_file_fails_naming_it_and_is_not_retried(
        run_job: Any, codec: str, tmp_path: Path) -> None:
    create_table("orders", [("id", "S", "HASH")])
    source = tmp_path / "orders.csv.gz"
    source.write_bytes(COMPRESSED[codec])
    report = run_job(source_path=str(source), target_table="orders")
    assert report.status == "FAILED"
    assert report.error is not None
    assert report.error.startswith(f"{source} is {codec}-compressed")
    assert "UTF-8" not in report.error
    assert report.retryable is False
