"""`dynamo-ingest flow` on an endpoint the user set: a second flow's job options reach the Glue
job it finds, and the target table is the user's (an absent one is refused as `run` refuses
it); on the embedded moto server the flow creates the table it needs."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, LedgerStatus
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX
from dynamo_ingest.core.errors import TargetTableError

from dynamo_ingest_cli.local_flow import LOCAL_BUCKET, LOCAL_JOB
from local_aws.moto_server import ENDPOINT_VARIABLES
from local_aws.resources import ensure_resources
from tests.stream.support import KEY, one_core, write_files

TABLE = "flow_opt_orders"
LEDGER = "flow-opt-ledger"


def _flow(paths: list[Path], *options: str) -> tuple[int, str, BaseException | None]:
    from typer.testing import CliRunner

    from dynamo_ingest_cli.main import app

    with one_core():
        result = CliRunner().invoke(app, [
            "flow", *map(str, paths), "--target_table", TABLE, "--partition_key", KEY,
            "--ledger_table", LEDGER, "--small_file_bytes", "0", *options],
            env={"COLUMNS": "250"})
    return result.exit_code, result.output, result.exception


def _users_table() -> None:
    """The user's own table (and, like Terraform, the rest), before any flow."""
    ensure_resources(bucket="unused-bucket", database="unused", target_table=TABLE,
                     partition_key=(KEY, "S"), sort_key=None, ledger_table=LEDGER)


def test_a_second_flow_applies_its_job_options_to_the_existing_glue_job(
        aws: str, tmp_path: Path) -> None:
    _users_table()
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = write_files(first_dir, 1)
    second = write_files(second_dir, 2, stride=100)[1:]  # other keys, another name
    code, output, _ = _flow(first, "--engine", "local", "--max_concurrent_runs", "3")
    assert code == 0, output

    code, output, _ = _flow(second, "--engine", "auto", "--drop_columns", "line",
                            "--max_concurrent_runs", "2")

    assert code == 0, output
    assert (f"Glue job {LOCAL_JOB} updated: --drop_columns (unset) → line, "
            "--engine local → auto, MaxConcurrentRuns 3 → 2") in output
    job = boto3.client("glue").get_job(JobName=LOCAL_JOB)["Job"]
    assert job["ExecutionProperty"] == {"MaxConcurrentRuns": 2}
    assert job["DefaultArguments"]["--engine"] == "auto"
    assert job["DefaultArguments"]["--drop_columns"] == "line"
    # the Glue run took the new defaults: chosen by auto, items without the dropped column
    ledger = Ledger(boto3.client("dynamodb"), LEDGER)
    record = ledger.find(f"s3://{LOCAL_BUCKET}/incoming/{second[0].name}")
    assert record is not None
    assert record.status == LedgerStatus.SUCCEEDED, record
    assert not (record.job_run_id or "").startswith(LAMBDA_RUN_PREFIX)  # a Glue run
    # --engine auto's small-file model chose, not the first flow's forced --engine local
    assert "--engine local" not in (record.engine_reason or ""), record.engine_reason
    assert "small-file threshold" in (record.engine_reason or ""), record.engine_reason
    items = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert {frozenset(item) for item in items} == {frozenset({KEY, "source", "line"}),
                                                   frozenset({KEY, "source"})}


def test_on_the_users_endpoint_an_absent_target_table_is_refused_as_run_refuses_it(
        aws: str, tmp_path: Path) -> None:
    paths = write_files(tmp_path, 1)

    code, output, error = _flow(paths, "--engine", "local")

    assert code != 0, output
    assert isinstance(error, TargetTableError), (error, output)
    assert f"target table {TABLE!r} does not exist" in str(error)
    assert "(set by AWS_ENDPOINT_URL)" in str(error)  # run's own wording, endpoint named
    assert TABLE not in boto3.client("dynamodb").list_tables()["TableNames"]


def test_on_the_embedded_moto_server_the_flow_creates_its_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    paths = write_files(tmp_path, 1)

    code, output, _ = _flow(paths, "--engine", "local")

    assert code == 0, output
    assert "embedded moto server at" in output
    rows = [line for line in output.splitlines() if line.startswith("│ incoming/")]
    assert len(rows) == 1, output
    assert "SUCCEEDED" in rows[0], output
