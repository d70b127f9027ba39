"""Whole output: nothing cut off a terminal, no RST markup in --help."""

from __future__ import annotations

from pathlib import Path

import boto3
from dynamo_ingest.arguments import DEFAULT_LEDGER_TABLE
from dynamo_ingest.ledger import Ledger, SourceObject

from tests.dynamo_ingest_cli.cli_child import (
    BUCKET,
    child_environ,
    run_piped,
)

LONG_KEY = "incoming/orders-2024-05-01-a-rather-long-export-name-from-the-warehouse.csv"


def test_piped_status_prints_whole_uris(aws: str, tmp_path: Path) -> None:
    ledger = Ledger(boto3.client("dynamodb"), DEFAULT_LEDGER_TABLE)
    ledger.ensure_table()
    ledger.receive(SourceObject(BUCKET, LONG_KEY, "etag-1"))

    result = run_piped(["status"], child_environ(), tmp_path)

    assert result.returncode == 0, result.stderr
    assert f"s3://{BUCKET}/{LONG_KEY}" in result.output
    assert "…" not in result.output


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
