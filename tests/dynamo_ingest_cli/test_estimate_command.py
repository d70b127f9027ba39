"""``dynamo-ingest estimate`` from the command line: against a table on moto, offline for a
new table, and refusing what it cannot estimate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import boto3
import pytest
import typer
from typer.testing import CliRunner

from dynamo_ingest_cli.estimate_command import estimate_command
from tests.glue_jobs.conftest import create_table

app = typer.Typer()
app.command("estimate")(estimate_command)


@app.callback()
def main() -> None:
    """Subcommands as in the real CLI."""


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["batchId", "email", "amount"])
        for n in range(rows):
            writer.writerow([f"b{n % 3}", f"user{n % (rows - 2)}@x.io", f"{n}.50"])
        writer.writerow(["b1", "", "1"])  # empty sort key: rejected
    return path


def test_estimate_against_the_table_prints_json(aws: str, tmp_path: Path) -> None:
    create_table("orders", [("pk", "S", "HASH"), ("sk", "S", "RANGE")])
    boto3.client("dynamodb").put_item(TableName="orders",
                                      Item={"pk": {"S": "x"}, "sk": {"S": "y"}})
    source = write_csv(tmp_path / "orders.csv", 50)

    result = CliRunner().invoke(app, [
        "estimate", str(source), "--target_table", "orders", "--json",
        "--partition_key_template", "{batchId}", "--sort_key_template", "{email}",
        "--partition_key_shards", "4", "--workers", "3"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rows"] == 51
    assert data["rejected_rows"] == 1
    assert data["duplicate_rows"] == 2  # user0@ and user1@ repeat with the same batch
    assert data["items"] == data["distinct_keys"] == 48
    assert data["partition_keys"] <= 12
    assert data["costs"]["glue_dpus"] == 3
    assert data["costs"]["import_from_s3"] is None  # the table is not empty
    assert data["source"] == str(source)


def test_estimate_for_a_new_table_needs_the_key_and_offers_import(aws: str,
                                                                  tmp_path: Path) -> None:
    source = write_csv(tmp_path / "orders.csv", 20)

    refused = CliRunner().invoke(app, ["estimate", str(source), "--target_table", "nope"])
    assert refused.exit_code == 1
    assert "--partition_key" in refused.output

    result = CliRunner().invoke(app, [
        "estimate", "--source_path", str(source), "--target_table", "nope",
        "--partition_key", "email", "--sort_key", "amount:N"])
    assert result.exit_code == 0, result.output
    for fragment in ("write units", "Import from S3", "does not exist yet", "Glue job"):
        assert fragment in result.stdout


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--write_mode", "upsert"], "--write_mode"),
    (["--partition_key", "id:X"], "NAME:N"),
    (["--ttl_attribute", "ttl"], "--ttl_from_column"),
])
def test_bad_arguments_exit_2_with_the_reason(tmp_path: Path, extra: list[str],
                                              fragment: str) -> None:
    source = write_csv(tmp_path / "orders.csv", 5)
    result = CliRunner().invoke(app, ["estimate", str(source), *extra])
    assert result.exit_code == 2
    assert fragment in result.output


def test_estimate_takes_a_tab_typed_as_an_escape_and_a_trailing_delimiter(
        aws: str, tmp_path: Path) -> None:
    source = tmp_path / "export.tsv"
    source.write_text("id\tname\t\n1\tann\t\n2\tbob\tx\n", encoding="utf-8")

    result = CliRunner().invoke(app, [
        "estimate", str(source), "--target_table", "nope", "--partition_key", "id",
        "--delimiter", "\\t", "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["rows"], data["items"], data["rejected_rows"]) == (2, 1, 1)
