"""The loops users write without us, run as their own process so the same meter measures them:
``python -m benchmarks.baselines batch_writer|put_item --csv F --table T --result R``.

Each reads the CSV with Python's csv module, types numbers with ``Decimal`` and booleans with
``bool`` (what boto3's resource layer needs), omits empty values, and writes with boto3's
defaults (the endpoint comes from ``AWS_ENDPOINT_URL_DYNAMODB``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dynamo_ingest_cli.datagen import ORDERS_SCHEMA

NUMERIC_TYPES = frozenset({"double", "bigint", "int", "float", "decimal", "smallint", "tinyint"})


def typed_rows(path: Path, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The file's rows as boto3 resource items: Decimal numbers, bool booleans, no empties."""
    numbers = {name for name, kind in ORDERS_SCHEMA if kind in NUMERIC_TYPES}
    booleans = {name for name, kind in ORDERS_SCHEMA if kind == "boolean"}
    with path.open(newline="", encoding="utf-8") as handle:
        for index, row in enumerate(csv.DictReader(handle)):
            if limit is not None and index >= limit:
                return
            item: dict[str, Any] = {}
            for name, value in row.items():
                if not value:
                    continue
                if name in numbers:
                    item[name] = Decimal(value)
                elif name in booleans:
                    item[name] = value.lower() == "true"
                else:
                    item[name] = value
            yield item


def run_loop(mode: str, path: Path, table_name: str, limit: int | None) -> dict[str, Any]:
    """Write the rows with ``mode`` (batch_writer or put_item); count what was handed to boto3."""
    import boto3

    table = boto3.resource("dynamodb").Table(table_name)
    started = time.monotonic()
    sent = 0
    error = None
    try:
        if mode == "batch_writer":
            with table.batch_writer() as batch:
                for item in typed_rows(path, limit):
                    batch.put_item(Item=item)
                    sent += 1
        else:
            for item in typed_rows(path, limit):
                table.put_item(Item=item)
                sent += 1
    except (ClientError, BotoCoreError) as err:
        # A plain loop dies when boto3's own retries run out; record it, as a user would see it.
        error = f"{type(err).__name__}: {err}"
    return {"mode": mode, "items_sent": sent, "elapsed_s": time.monotonic() - started,
            "error": error}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; writes the result JSON and exits 1 if the loop died."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    parser.add_argument("mode", choices=("batch_writer", "put_item"))
    parser.add_argument("--csv", required=True, type=Path)
    parser.add_argument("--table", required=True)
    parser.add_argument("--limit", type=int, help="write only the first N rows")
    parser.add_argument("--result", required=True, type=Path)
    args = parser.parse_args(argv)
    result = run_loop(args.mode, args.csv, args.table, args.limit)
    args.result.write_text(json.dumps(result))
    return 1 if result["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
