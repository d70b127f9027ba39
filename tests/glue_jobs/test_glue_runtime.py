"""The job under the real AWS Glue runtime (GlueContext, Job.init/commit).

These run only inside AWS's Glue 5 image (`docker compose run --rm glue`), where the
`awsglue` runtime exists and the compose service sets GLUE_RUNTIME=1; everywhere else they
are skipped with that reason (awsglue-dev only ships the Python interfaces).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.glue_jobs.conftest import TABLE, create_table, scan_table


def _glue_runtime_available() -> bool:
    if os.environ.get("GLUE_RUNTIME") != "1":
        return False
    try:
        import awsglue.context  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = [
    pytest.mark.glue_runtime,
    pytest.mark.skipif(not _glue_runtime_available(),
                       reason="needs the real awsglue runtime: runs only in the Glue 5 image "
                              "(docker compose run --rm glue, which sets GLUE_RUNTIME=1)"),
]


def test_entry_script_runs_under_glue_context_and_commits(aws: str, tmp_path: Path) -> None:
    import importlib.util

    from dynamo_ingest.spark.runtime import glue_runtime

    script = Path(__file__).parents[2] / "glue_jobs" / "load_csv_to_dynamodb.py"
    spec = importlib.util.spec_from_file_location("load_csv_to_dynamodb", script)
    assert spec is not None
    assert spec.loader is not None
    load_csv_to_dynamodb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(load_csv_to_dynamodb)

    create_table(TABLE, [("id", "S", "HASH")])
    source = tmp_path / "in.csv"
    source.write_text("id,amount\n1,2.50\n2,3\n2,4\n", encoding="utf-8")

    code = load_csv_to_dynamodb.main(["load_csv_to_dynamodb.py", "--JOB_NAME", "local-test",
                                      "--JOB_RUN_ID", "jr_local", "--source_path", str(source),
                                      "--target_table", TABLE])

    assert code == 0
    assert scan_table(TABLE) == {("1",): {"id": {"S": "1"}, "amount": {"N": "2.50"}},
                                 ("2",): {"id": {"S": "2"}, "amount": {"N": "4"}}}
    runtime: Any = glue_runtime("local-test-2", {})
    assert runtime.is_glue
    runtime.commit()
