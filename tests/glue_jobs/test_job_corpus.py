"""The malformed-CSV corpus end to end: real Spark, moto over HTTP, the catalog schema.

Each case either loads exactly the expected items or rejects the expected records with the
expected reason, and the report's accounting identity holds.
"""

from __future__ import annotations

import json
import shutil
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

CORPUS = Path(__file__).parents[1] / "csv_corpus"
EXPECTED: dict[str, Any] = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))


@pytest.mark.spark
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus_case(case: str, run_job: Any, tmp_path: Path) -> None:
    expected = EXPECTED[case]
    source = tmp_path / f"{case}.csv"
    shutil.copy(CORPUS / f"{case}.csv", source)
    create_table(TABLE, [("id", "S", "HASH")])
    register_catalog([("id", "bigint"), ("name", "string"), ("amount", "double")])

    report = run_job(source_path=str(source), catalog_database=DATABASE,
                     catalog_table=CATALOG_TABLE, partitions=3)

    items = scan_table(TABLE)
    want = {(key,): {"id": {"S": key}, **attrs} for key, attrs in expected["items"].items()}
    assert items == want
    data = report.to_dict()
    rows = len(expected["items"]) + len(expected["rejected"]) + expected["duplicates"]
    assert data["rows_read"] == rows
    assert data["items_written"] == len(expected["items"])
    assert data["rows_rejected"] == len(expected["rejected"])
    assert data["duplicate_rows"] == expected["duplicates"]
    assert report.counts.identity_holds
    if expected["rejected"]:
        assert report.status == "SUCCEEDED_WITH_REJECTS"
        rejects = read_rejects(report.rejects_path or "")
        assert rejects[0] == ["record_no", "reason", "id", "Name", "amount"]
        reasons = {row[0]: row[1] for row in rejects[1:]}
        assert sorted(reasons) == sorted(expected["rejected"])
        for record_no, fragment in expected["rejected"].items():
            assert fragment in reasons[record_no], (record_no, reasons[record_no])
    else:
        assert report.status == "SUCCEEDED", report.error
        assert report.rejects_path is None
