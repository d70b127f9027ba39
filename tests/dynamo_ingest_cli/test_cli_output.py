"""Honest, whole output: nothing cut off a terminal, no RST markup in --help, the demo never
loads into a user's table that holds items, and it counts items where ItemCount is not live.
(The emulator's capacity figures are checked in test_terminal.py.)"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from dynamo_ingest.control.ledger import Ledger, SourceObject
from dynamo_ingest.core.arguments import DEFAULT_LEDGER_TABLE

from tests.dynamo_ingest_cli.cli_child import (
    BUCKET,
    child_environ,
    deploy,
    run_piped,
    write_orders,
)
from tests.glue_jobs.conftest import scan_table
from tests.glue_jobs.test_job_dynalite import dynalite  # noqa: F401  (a fixture)

LONG_KEY = "incoming/orders-2024-05-01-a-rather-long-export-name-from-the-warehouse.csv"


def test_piped_status_prints_whole_uris(aws: str, tmp_path: Path) -> None:
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    ledger.ensure_table()
    ledger.receive(SourceObject(BUCKET, LONG_KEY, "etag-1"))

    result = run_piped(["status"], child_environ(), tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"s3://{BUCKET}/{LONG_KEY}" in result.output
    assert "…" not in result.output


def test_status_shows_the_rows_a_resumed_run_skipped(aws: str, tmp_path: Path) -> None:
    # A resumed run writes only what earlier attempts did not: without the skipped rows, its
    # row reads like 20,000 read and 13,200 written, as if rows were lost.
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    ledger.ensure_table()
    source = SourceObject(BUCKET, "incoming/resumed.csv", "etag-1")
    ledger.receive(source)
    ledger.job_started(source, "local-1")
    ledger.record_report(source, "local-1", {
        "status": "SUCCEEDED", "rows_read": 20_000, "items_written": 13_200,
        "rows_rejected": 0, "duplicate_rows": 0, "rows_skipped_by_resume": 6_800})

    result = run_piped(["status"], child_environ(), tmp_path)

    assert result.returncode == 0, result.stderr
    row = next(line for line in result.output.splitlines() if "resumed.csv" in line)
    assert "skipped (resumed)" in result.output
    assert "6,800" in row


def test_piped_estimate_prints_whole_lines(aws: str, tmp_path: Path) -> None:
    import json

    source = write_orders(tmp_path / "orders.csv", 20)
    args = ["estimate", str(source), "--partition_key", "orderId"]

    notes = json.loads(run_piped([*args, "--json"], child_environ(), tmp_path).output)["notes"]
    result = run_piped(args, child_environ(), tmp_path)

    assert result.returncode == 0, result.stderr
    assert any(len(note) > 80 for note in notes), "a note must be longer than 80 columns"
    lines = result.output.splitlines()
    for note in notes:
        assert f"note: {note}" in lines


def test_no_command_help_shows_rst_markup() -> None:
    from typer.main import get_command
    from typer.testing import CliRunner

    from dynamo_ingest_cli.main import app

    names = sorted(get_command(app).commands)  # type: ignore[attr-defined]
    assert {"run", "demo", "status", "retry", "crawl", "init", "estimate"} <= set(names)
    for args in ([], *([name] for name in names)):
        result = CliRunner().invoke(app, [*args, "--help"])
        assert result.exit_code == 0, result.output
        assert "``" not in result.output, f"{' '.join(args) or 'dynamo-ingest'} --help"


def test_demo_refuses_a_table_that_holds_items_on_the_users_endpoint(aws: str,
                                                                    tmp_path: Path) -> None:
    deploy()
    mine = {"orderId": {"S": "mine"}, "note": {"S": "not the demo's"}}
    boto3.client("dynamodb").put_item(TableName="orders", Item=mine)

    result = run_piped(["demo", "--rows", "100", "--workdir", str(tmp_path)], child_environ(),
                       tmp_path)

    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: expected no items in the demo's table 'orders'")
    assert "--overwrite" in line
    assert scan_table("orders") == {("mine",): mine}


@pytest.mark.usefixtures("dynalite")
def test_the_demo_counts_items_where_item_count_is_not_live() -> None:
    from dynamo_ingest_cli.demo import count_items
    from tests.glue_jobs.conftest import create_table

    create_table("orders", [("orderId", "S", "HASH")])
    client = boto3.client("dynamodb")
    for batch in range(4):
        client.batch_write_item(RequestItems={"orders": [
            {"PutRequest": {"Item": {"orderId": {"S": f"O{batch}-{n}"}}}} for n in range(25)]})

    assert count_items(client, "orders") == 100


def test_the_summary_labels_an_emulators_capacity_as_its_own() -> None:
    import io

    from dynamo_ingest.core.report import RowCounts, RunReport
    from rich.console import Console

    from dynamo_ingest_cli.main import summary_table

    # What moto answered for the demo's 99,980 one-unit items: one unit per batch of 25.
    report = RunReport(status="SUCCEEDED", source_path="s3://b/k.csv", target_table="orders",
                       counts=RowCounts(rows_read=99_980, items_written=99_980,
                                        wcu_consumed=4_000.0, wcu_estimated=99_980),
                       extra={"write_cost_on_demand_usd": 0.062488,
                              "write_cost_basis": "wcu_estimated"})

    def shown(emulator: str | None) -> str:
        screen = io.StringIO()
        Console(file=screen, width=200).print(summary_table(report, emulator))
        return screen.getvalue()

    on_moto = shown("moto")
    assert "4,000.0 as reported by moto, not DynamoDB's figure" in on_moto
    assert "99,980 (from the item sizes)" in on_moto
    assert "0.062488 (priced from wcu_estimated)" in on_moto
    assert "not DynamoDB's figure" not in shown(None)


def test_the_demo_loads_into_a_table_with_items_only_when_told_to_overwrite(aws: str) -> None:
    from dynamo_ingest_cli.demo import DemoTableInUseError, table_items_before

    client = boto3.client("dynamodb")
    assert table_items_before(client, "orders", overwrite=False) == 0  # no table yet
    deploy()
    assert table_items_before(client, "orders", overwrite=False) == 0  # an empty table
    client.put_item(TableName="orders", Item={"orderId": {"S": "mine"}})

    with pytest.raises(DemoTableInUseError, match="--overwrite"):
        table_items_before(client, "orders", overwrite=False)
    assert table_items_before(client, "orders", overwrite=True) == 1


def test_a_piped_estimate_error_is_one_line(aws: str, tmp_path: Path) -> None:
    """An error off a terminal is the one line the README promises, not wrapped at 80."""
    import gzip

    source = tmp_path / ("a-rather-long-export-name-from-the-warehouse-" * 2 + "bomb.csv.gz")
    with gzip.open(source, "wb") as handle:
        handle.write(b"id,v\n")
        handle.write(b"\0" * (64 * 1024 * 1024))  # expands far past 200x what is stored
    result = run_piped(["estimate", str(source), "--partition_key", "id"], child_environ(),
                       tmp_path)

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert source.name in errors[0], errors[0]
    assert "expands" in errors[0], errors[0]
