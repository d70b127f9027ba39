"""The thin Glue entry script on local Spark: arguments in, report out, failure raised."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.glue_jobs.conftest import TABLE, create_table, scan_table

SCRIPT = Path(__file__).parents[2] / "glue_jobs" / "load_csv_to_dynamodb.py"
pytestmark = pytest.mark.spark


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_csv_to_dynamodb", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_glue_style_arguments_load_and_print_the_report(aws: str, spark: Any, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id,n\n1,10\n2,20\n", encoding="utf-8")
    script = load_script()

    code = script.main([str(SCRIPT), "--source_path", str(source), f"--target_table={TABLE}",
                        "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://t/"])

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "SUCCEEDED"
    assert report["items_written"] == 2
    assert set(scan_table(TABLE)) == {("1",), ("2",)}


def test_a_failed_load_raises_so_glue_marks_the_run_failed(aws: str, spark: Any,
                                                           tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text("id,n\n1,10\n", encoding="utf-8")
    script = load_script()

    with pytest.raises(script.JobFailedError, match="does not exist"):
        script.main([str(SCRIPT), "--source_path", str(source), "--target_table", "missing"])


def test_missing_required_argument_names_it() -> None:
    from dynamo_ingest.core.errors import ArgumentError

    script = load_script()
    with pytest.raises(ArgumentError, match="--target_table"):
        script.main([str(SCRIPT), "--source_path", "x.csv"])
