"""`dynamo-ingest flow` and the target table's key: an existing table's key schema is read
from the table as `run` reads it (the key options, when given, must match it); a table the
flow creates on its embedded moto server takes ``NAME[:S|N|B]`` as `init` does. And the
outcome row adds up: read = written + rejected + dups + skipped (resumed) + kept."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from dynamo_ingest.core.errors import ArgumentError, TargetTableError

from local_aws.moto_server import ENDPOINT_VARIABLES
from local_aws.resources import ensure_resources
from tests.stream.support import one_core

TABLE = "flow_key_orders"
LEDGER = "flow-key-ledger"
COUNTS = ("read", "written", "rejected", "dups", "skipped (resumed)", "kept")


def _flow(paths: list[Path], *options: str) -> tuple[int, str, BaseException | None]:
    from typer.testing import CliRunner

    from dynamo_ingest_cli.main import app

    with one_core():
        result = CliRunner().invoke(app, [
            "flow", *map(str, paths), "--target_table", TABLE, "--ledger_table", LEDGER,
            "--engine", "local", *options], env={"COLUMNS": "250"})
    return result.exit_code, result.output, result.exception


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")
    return path


def _users_table(partition: tuple[str, str], sort: tuple[str, str] | None = None) -> None:
    ensure_resources(bucket="unused-bucket", database="unused", target_table=TABLE,
                     partition_key=partition, sort_key=sort,  # type: ignore[arg-type]
                     ledger_table=LEDGER)


def _items() -> list[dict[str, dict[str, str]]]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]  # type: ignore[return-value]


def _outcome(output: str) -> dict[str, str]:
    """The outcome table's one file row, by column (the header row names them)."""
    lines = output.splitlines()
    header = next(line for line in lines if line.startswith("┃ file"))
    row = next(line for line in lines if line.startswith("│ incoming/"))
    names = [cell.strip() for cell in header.strip("┃").split("┃")]
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    return dict(zip(names, cells, strict=True))


@pytest.mark.parametrize("key_options", [(), ("--partition_key", "orderId"),
                                         ("--partition_key", "orderId:N")],
                         ids=["no key option", "name", "name:N"])
def test_an_existing_tables_numeric_key_is_read_from_the_table(
        key_options: tuple[str, ...], aws: str, tmp_path: Path) -> None:
    _users_table(("orderId", "N"))
    path = _csv(tmp_path / "nk1.csv", "orderId,item", "1,a", "2,b", "3,c")

    code, output, error = _flow([path], *key_options)

    assert code == 0, (output, error)
    assert _outcome(output)["written"] == "3", output
    assert sorted(int(i["orderId"]["N"]) for i in _items()) == [1, 2, 3]


def test_an_existing_tables_sort_key_is_read_from_the_table(aws: str, tmp_path: Path) -> None:
    _users_table(("pk", "S"), ("seq", "N"))
    path = _csv(tmp_path / "sk.csv", "pk,seq,item", "a,1,x", "a,2,y")

    code, output, error = _flow([path], "--partition_key", "pk")

    assert code == 0, (output, error)
    assert sorted((i["pk"]["S"], i["seq"]["N"]) for i in _items()) == [("a", "1"), ("a", "2")]


def test_a_key_option_that_contradicts_the_table_is_refused_in_runs_words(
        aws: str, tmp_path: Path) -> None:
    _users_table(("orderId", "N"))
    path = _csv(tmp_path / "nk1.csv", "orderId,item", "1,a")

    code, output, error = _flow([path], "--partition_key", "orderId:S")

    assert code != 0, output
    assert isinstance(error, TargetTableError), (error, output)
    assert str(error) == (f"--partition_key is 'orderId:S' but table {TABLE!r} has partition "
                          "key 'orderId' of type N, not S: pass --partition_key orderId (or "
                          "orderId:N)")
    assert _items() == []


@pytest.fixture
def embedded_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """No endpoint set: `flow` starts its own moto server."""
    for name in ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_on_the_embedded_moto_server_a_missing_table_takes_the_typed_key_options(
        embedded_moto: None, tmp_path: Path) -> None:
    path = _csv(tmp_path / "nk1.csv", "orderId,seq,item", "1,10,a", "2,20,b")

    code, output, error = _flow([path], "--partition_key", "orderId:N", "--sort_key", "seq:N")

    assert code == 0, (output, error)
    # the rows loaded as numbers: the table was created with N keys (as text they fail)
    assert _outcome(output)["written"] == "2", output
    assert _outcome(output)["status"] == "SUCCEEDED", output


def test_on_the_embedded_moto_server_a_missing_table_needs_the_partition_key_option(
        embedded_moto: None, tmp_path: Path) -> None:
    path = _csv(tmp_path / "nk1.csv", "orderId,item", "1,a")

    code, output, error = _flow([path])

    assert code != 0, output
    assert isinstance(error, ArgumentError), (error, output)
    assert "expected --partition_key NAME[:S|N|B]" in str(error)
    assert "PARTITION_KEY" not in str(error)


@pytest.mark.parametrize(("mode", "kept"), [
    (("--write_mode", "insert"), "2"),
    (("--write_mode", "merge", "--version_column", "version"), "1"),
], ids=["insert keeps existing items", "merge keeps newer versions"])
def test_the_outcome_row_adds_up_with_the_items_a_condition_kept(
        mode: tuple[str, ...], kept: str, aws: str, tmp_path: Path) -> None:
    _users_table(("orderId", "S"))
    dynamodb = boto3.client("dynamodb")
    # two items already there; under merge only k1 holds a newer version than the file's
    for key, version in (("k1", "9"), ("k2", "1")):
        dynamodb.put_item(TableName=TABLE, Item={"orderId": {"S": key},
                                                 "version": {"N": version}})
    path = _csv(tmp_path / "cond.csv", "orderId,version", "k1,5", "k2,5", "k3,5")

    code, output, error = _flow([path], "--partition_key", "orderId", *mode)

    assert code == 0, (output, error)
    row = _outcome(output)
    assert row["kept"] == kept, output
    counts = {name: int(row[name].replace(",", "")) for name in COUNTS}
    assert counts["read"] == 3, output
    assert counts["read"] == sum(counts[name] for name in COUNTS[1:]), output
