"""``dynamo-ingest run`` takes the bucket's folders like the Glue job, so a local manual run of
an ``s3://`` object writes its rejects where the deployment's trigger would."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from dynamo_ingest_cli.main import app
from tests.glue_jobs.conftest import create_table


@pytest.mark.spark
def test_run_writes_rejects_into_the_error_folder_it_is_given(aws: str, spark: Any) -> None:
    create_table("orders", [("id", "S", "HASH")])
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="csv/2024/orders.csv", Body=b"id,amount\n,6\n1,5\n")

    result = CliRunner().invoke(app, [
        "run", "--source_path", "s3://landing/csv/2024/orders.csv", "--target_table", "orders",
        "--incoming_prefix", "csv/", "--error_prefix", "failed/", "--quiet"])

    assert result.exit_code == 0, result.output
    body = s3.get_object(Bucket="landing", Key="failed/2024/orders.csv.rejects.csv")["Body"]
    assert body.read().decode().splitlines()[1].startswith("1,")
