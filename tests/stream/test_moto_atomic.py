"""The dispatcher's races are tested against moto: its DynamoDB must keep what DynamoDB keeps
under concurrent requests. The interleaving is driven at the exact step inside moto's
``TransactWriteItems`` (an in-process moto server over real HTTP, its backend instrumented),
so the test does not depend on timing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer

from local_aws.moto_atomic import serialize_dynamodb
from local_aws.moto_server import free_port

TABLE = "atomicity"
# Generous: only a broken server (or a deadlock) gets near it.
BOUND_S = 60.0


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    waited = threading.Event()
    for _ in range(int(BOUND_S / 0.01)):
        if condition():
            return
        waited.wait(0.01)
    raise AssertionError(f"{what} did not happen within {BOUND_S:.0f} s")


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    """A DynamoDB client of an in-process moto server, with DynamoDB requests serialised as
    the tests' moto server child serialises them, and a fresh table."""
    serialize_dynamodb()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1", aws_access_key_id="testing",
                              aws_secret_access_key="testing")
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
        yield client
        client.delete_table(TableName=TABLE)
    finally:
        server.stop()


def _put(k: str, n: int, *, if_n: int | None = None) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": TABLE, "Item": {"k": {"S": k}, "n": {"N": str(n)}}}
    if if_n is not None:
        put.update(ConditionExpression="n = :n",
                   ExpressionAttributeValues={":n": {"N": str(if_n)}})
    return put


def test_a_failed_transaction_never_undoes_a_write_acknowledged_meanwhile(
        dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The dispatcher race this guards: two dispatchers claim one file; the loser's
    # transaction fails its condition, and moto put back its copy of the table, taken before
    # the winner's claim landed: the file was QUEUED again under a run already started.
    dynamodb.put_item(**_put("winner", 1))
    dynamodb.put_item(**_put("loser", 1))
    checking, arrived, applied = threading.Event(), threading.Event(), threading.Event()
    lock = serialize_dynamodb()
    get_item, put_item = DynamoDBBackend.get_item, DynamoDBBackend.put_item
    answer = DynamoHandler.call_action

    def held_get_item(self: DynamoDBBackend, table: str, keys: dict[str, Any],
                      *args: Any, **kwargs: Any) -> Any:
        if keys.get("k") == {"S": "loser"} and not checking.is_set():
            # The loser's transaction has copied the table and checks its condition: hold
            # it until the winner's write is applied, or waits for the loser's request.
            checking.set()
            _wait_until(lambda: applied.is_set() or (arrived.is_set() and lock.locked()),
                        "the winner's write")
        return get_item(self, table, keys, *args, **kwargs)

    def noted_put_item(self: DynamoDBBackend, table: str, item: dict[str, Any],
                       *args: Any, **kwargs: Any) -> Any:
        stored = put_item(self, table, item, *args, **kwargs)
        if item.get("k") == {"S": "winner"}:
            applied.set()
        return stored

    def arriving(self: DynamoHandler) -> Any:
        if checking.is_set():
            arrived.set()
        return answer(self)

    monkeypatch.setattr(DynamoDBBackend, "get_item", held_get_item)
    monkeypatch.setattr(DynamoDBBackend, "put_item", noted_put_item)
    monkeypatch.setattr(DynamoHandler, "call_action", arriving)
    outcomes: dict[str, str] = {}

    def lose() -> None:
        try:
            dynamodb.transact_write_items(TransactItems=[{"Put": _put("loser", 2, if_n=7)}])
            outcomes["loser"] = "written"
        except ClientError as err:
            outcomes["loser"] = str(err.response["Error"]["Code"])

    def win() -> None:
        dynamodb.put_item(**_put("winner", 2, if_n=1))
        outcomes["winner"] = "written"

    loser = threading.Thread(target=lose)
    loser.start()
    _wait_until(checking.is_set, "the loser's condition check")
    winner = threading.Thread(target=win)
    winner.start()
    loser.join()
    winner.join()
    assert outcomes == {"loser": "TransactionCanceledException", "winner": "written"}
    item = dynamodb.get_item(TableName=TABLE, Key={"k": {"S": "winner"}}, ConsistentRead=True)
    assert item["Item"]["n"] == {"N": "2"}  # the acknowledged write stands
