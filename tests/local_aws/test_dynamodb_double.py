"""The DynamoDB double over real HTTP, in front of the moto server: faults, capacity, sink."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError
from dynamo_ingest.engine.sizing import item_size, write_units

from local_aws.dynamodb_double import DoubleError, DynamoDBDouble, FaultPlan
from local_aws.moto_server import stop_process

TABLE = "orders"
SORTED_TABLE = "events"


def client(url: str) -> Any:
    """A DynamoDB client with retries off, so each fault reaches the test."""
    return boto3.client("dynamodb", endpoint_url=url,
                        config=Config(retries={"total_max_attempts": 1}))


def item(pk: str, size: int = 10, **extra: dict[str, str]) -> dict[str, Any]:
    """A low-level item whose ``blob`` attribute holds ``size`` characters."""
    return {"pk": {"S": pk}, "blob": {"S": "x" * size}, **extra}


def puts(items: list[dict[str, Any]], table: str = TABLE) -> dict[str, Any]:
    """BatchWriteItem RequestItems putting ``items``."""
    return {table: [{"PutRequest": {"Item": i}} for i in items]}


def stored_keys(aws: str, table: str = TABLE) -> set[str]:
    """Partition-key values stored upstream (read from moto directly, not through the double)."""
    pages = client(aws).get_paginator("scan").paginate(TableName=table)
    return {i["pk"]["S"] for page in pages for i in page["Items"]}


@pytest.fixture
def tables(aws: str) -> str:
    """``orders`` (pk) and ``events`` (pk, sk) created in moto; yields the moto URL."""
    moto = client(aws)
    moto.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    moto.create_table(TableName=SORTED_TABLE, BillingMode="PAY_PER_REQUEST",
                      KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                 {"AttributeName": "sk", "KeyType": "RANGE"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                            {"AttributeName": "sk", "AttributeType": "N"}])
    return aws


@pytest.fixture
def double(tables: str) -> Iterator[DynamoDBDouble]:
    """A double in front of moto with no faults (tests set their plan)."""
    with DynamoDBDouble(tables) as running:
        yield running


def error_code(err: ClientError) -> str:
    """The AWS error code botocore parsed from the answer."""
    return str(err.response["Error"]["Code"])


def test_reads_and_table_operations_pass_through(double: DynamoDBDouble, tables: str) -> None:
    client(tables).put_item(TableName=TABLE, Item=item("a"))
    via_double = client(double.url)

    described = via_double.describe_table(TableName=TABLE)["Table"]
    scanned = via_double.scan(TableName=TABLE)["Items"]

    assert described["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert scanned == [item("a")]
    assert double.stats.requests == 2
    assert double.stats.write_requests == 0


def test_plain_writes_reach_upstream_with_the_doubles_consumed_capacity(
        double: DynamoDBDouble, tables: str) -> None:
    big = item("big", size=2900)
    wcu = write_units(item_size(big))
    via_double = client(double.url)

    put = via_double.put_item(TableName=TABLE, Item=big, ReturnConsumedCapacity="TOTAL")
    batch = via_double.batch_write_item(RequestItems=puts([item("b"), item("c")]),
                                        ReturnConsumedCapacity="INDEXES")

    assert wcu == 3
    assert put["ConsumedCapacity"] == {"TableName": TABLE, "CapacityUnits": float(wcu)}
    assert batch["UnprocessedItems"] == {}
    assert batch["ConsumedCapacity"] == [
        {"TableName": TABLE, "CapacityUnits": 2.0, "Table": {"CapacityUnits": 2.0}}]
    assert stored_keys(tables) == {"big", "b", "c"}
    assert double.stats.items_accepted == 3
    assert double.stats.wcu_accepted == wcu + 2


def test_writes_to_a_missing_table_get_upstreams_error(double: DynamoDBDouble) -> None:
    with pytest.raises(ClientError) as err:
        client(double.url).batch_write_item(RequestItems=puts([item("a")], "missing"))

    assert error_code(err.value) == "ResourceNotFoundException"
    assert double.stats.items_accepted == 0


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException",
                                  "ThrottlingException"])
def test_throttle_share_one_refuses_every_write(double: DynamoDBDouble, tables: str,
                                                code: str) -> None:
    double.set_plan(FaultPlan(throttle_share=1.0, throttle_code=code))
    via_double = client(double.url)

    with pytest.raises(ClientError) as batch_err:
        via_double.batch_write_item(RequestItems=puts([item("a"), item("b")]))
    with pytest.raises(ClientError) as put_err:
        via_double.put_item(TableName=TABLE, Item=item("c"))

    assert error_code(batch_err.value) == code
    assert error_code(put_err.value) == code
    assert batch_err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert stored_keys(tables) == set()
    assert double.stats.items_throttled == 3
    assert via_double.scan(TableName=TABLE)["Count"] == 0  # reads are never throttled


def test_unprocessed_items_come_back_and_are_not_written(double: DynamoDBDouble,
                                                         tables: str) -> None:
    sent = [item(f"k{i}") for i in range(25)]
    via_double = client(double.url)

    double.set_plan(FaultPlan(unprocessed_share=1.0))
    everything = via_double.batch_write_item(RequestItems=puts(sent))["UnprocessedItems"]
    double.set_plan(FaultPlan(unprocessed_share=0.5, seed=7))
    some = via_double.batch_write_item(RequestItems=puts(sent))["UnprocessedItems"][TABLE]

    assert everything == puts(sent)
    returned = {r["PutRequest"]["Item"]["pk"]["S"] for r in some}
    assert 0 < len(returned) < len(sent)
    assert stored_keys(tables) == {i["pk"]["S"] for i in sent} - returned
    assert double.stats.items_unprocessed == len(sent) + len(returned)


def test_5xx_share_answers_server_errors_and_writes_nothing(double: DynamoDBDouble,
                                                           tables: str) -> None:
    double.set_plan(FaultPlan(error_5xx_share=1.0))
    statuses = set()
    for attempt in range(8):
        with pytest.raises(ClientError) as err:
            client(double.url).put_item(TableName=TABLE, Item=item(f"k{attempt}"))
        statuses.add((err.value.response["ResponseMetadata"]["HTTPStatusCode"],
                      error_code(err.value)))

    assert statuses == {(500, "InternalServerError"), (503, "ServiceUnavailable")}
    assert stored_keys(tables) == set()
    assert double.stats.errors_5xx == 8


def test_reset_share_closes_the_connection_before_writing(double: DynamoDBDouble,
                                                          tables: str) -> None:
    double.set_plan(FaultPlan(reset_share=1.0))

    with pytest.raises(ConnectionClosedError):
        client(double.url).batch_write_item(RequestItems=puts([item("a")]))

    assert stored_keys(tables) == set()
    assert double.stats.resets == 1


def test_latency_is_added_to_every_request(double: DynamoDBDouble) -> None:
    via_double = client(double.url)
    via_double.describe_table(TableName=TABLE)  # connect and cache before timing
    double.set_plan(FaultPlan(latency_s=0.3))

    started = time.monotonic()
    via_double.describe_table(TableName=TABLE)
    via_double.describe_table(TableName=TABLE)
    elapsed = time.monotonic() - started

    # Each of the two requests waits its 0.3 s; no upper bound, a busy machine only adds to it.
    assert elapsed >= 2 * 0.3


def test_duplicate_keys_in_one_batch_fail_the_whole_batch(double: DynamoDBDouble,
                                                          tables: str) -> None:
    via_double = client(double.url)
    put_and_delete = {TABLE: [{"PutRequest": {"Item": item("a")}},
                              {"PutRequest": {"Item": item("b")}},
                              {"DeleteRequest": {"Key": {"pk": {"S": "a"}}}}]}
    same_pk_other_sk = puts([item("a", sk={"N": "1"}), item("a", sk={"N": "2"})], SORTED_TABLE)

    with pytest.raises(ClientError) as err:
        via_double.batch_write_item(RequestItems=put_and_delete)
    via_double.batch_write_item(RequestItems=same_pk_other_sk)

    assert error_code(err.value) == "ValidationException"
    assert err.value.response["Error"]["Message"] == (
        "Provided list of item keys contains duplicates")
    assert stored_keys(tables) == set()
    assert stored_keys(tables, SORTED_TABLE) == {"a"}
    assert double.stats.duplicate_key_rejections == 1


def test_duplicates_are_rejected_even_by_the_null_sink(double: DynamoDBDouble) -> None:
    double.set_plan(FaultPlan(null_sink=True))

    with pytest.raises(ClientError) as err:
        client(double.url).batch_write_item(RequestItems=puts([item("a"), item("a")]))

    assert error_code(err.value) == "ValidationException"


def test_capacity_limits_accepted_wcu_per_second(double: DynamoDBDouble, tables: str) -> None:
    capacity, burst_s = 400.0, 0.25
    double.set_plan(FaultPlan(capacity_wcu_s=capacity, burst_s=burst_s))
    # 120 × 5 KB = 600 WCU: more than one second's capacity plus the burst, and one batch
    # (125 WCU) more than the burst, so every batch is cut short however slow the client is.
    items = [item(f"k{i:03}", size=4900) for i in range(120)]
    wcu_each = write_units(item_size(items[0]))
    via_double = client(double.url)
    pending, refusals, refused_items, reported_wcu = list(items), 0, 0, 0.0
    refusal_codes: set[str] = set()
    first_answer_unprocessed: int | None = None

    started = time.monotonic()
    while pending:
        batch, pending = pending[:25], pending[25:]
        try:
            answer = via_double.batch_write_item(RequestItems=puts(batch),
                                                 ReturnConsumedCapacity="TOTAL")
        except ClientError as err:
            refusal_codes.add(error_code(err))
            refusals += 1
            refused_items += len(batch)
            pending = batch + pending
            time.sleep(0.05)  # backoff, as a client would
            continue
        left = [r["PutRequest"]["Item"] for r in answer["UnprocessedItems"].get(TABLE, [])]
        if first_answer_unprocessed is None:
            first_answer_unprocessed = len(left)
        reported_wcu += answer["ConsumedCapacity"][0]["CapacityUnits"]
        pending = left + pending
        if left:
            time.sleep(0.05)
    elapsed = time.monotonic() - started

    stats = double.stats
    total_wcu = wcu_each * len(items)
    assert wcu_each == 5
    assert first_answer_unprocessed == 5  # the burst (100 WCU) takes 20 of the first 25
    assert refusals + stats.items_unprocessed > 0
    assert refusal_codes <= {"ProvisionedThroughputExceededException"}
    assert stats.items_throttled == refused_items
    assert elapsed >= (total_wcu - capacity * burst_s) / capacity * 0.95
    assert total_wcu > capacity * (1 + burst_s)
    assert 0 < stats.peak_wcu_per_second() <= capacity * (1 + burst_s)
    assert reported_wcu == stats.wcu_accepted == total_wcu
    assert stored_keys(tables) == {i["pk"]["S"] for i in items}


# How long the slow upstream holds each BatchWriteItem after the double took its capacity.
UPSTREAM_HOLD_S = 1.2


@pytest.fixture
def slow_upstream(tables: str) -> Iterator[str]:
    """moto behind a proxy that holds every BatchWriteItem ``UPSTREAM_HOLD_S`` (an upstream on
    a busy machine); yields the proxy's URL."""

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("X-Amz-Target", "").endswith(".BatchWriteItem"):
                time.sleep(UPSTREAM_HOLD_S)  # the latency under test, not a wait
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length")}
            try:
                with urllib.request.urlopen(urllib.request.Request(tables, data=body,
                                                                   headers=headers),
                                            timeout=30) as answer:
                    status, payload, answer_headers = answer.status, answer.read(), answer.headers
            except urllib.error.HTTPError as err:
                status, payload, answer_headers = err.code, err.read(), err.headers
            self.send_response(status)
            for name in ("Content-Type", "x-amz-crc32", "x-amzn-RequestId"):
                if answer_headers.get(name):
                    self.send_header(name, answer_headers[name])
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_capacity_is_counted_in_the_second_it_was_taken(slow_upstream: str,
                                                        tables: str) -> None:
    with DynamoDBDouble(slow_upstream) as double:
        answer = client(double.url).batch_write_item(RequestItems=puts([item("a")]))
        answered_at = time.monotonic() - double._started_at
        stats = double.stats

    # The upstream held the write UPSTREAM_HOLD_S after the double took the capacity, so the
    # second it was taken in is before the one the upstream answered in.
    assert answer["UnprocessedItems"] == {}
    assert stored_keys(tables) == {"a"}
    assert stats.wcu_accepted == 1.0
    [second] = stats.wcu_by_second
    assert second <= int(answered_at - UPSTREAM_HOLD_S)


def test_single_writes_over_capacity_are_throttled_whole(double: DynamoDBDouble) -> None:
    double.set_plan(FaultPlan(capacity_wcu_s=4.0, burst_s=1.0))
    via_double = client(double.url)
    via_double.put_item(TableName=TABLE, Item=item("a", size=2900))  # 3 of the 4 WCU

    with pytest.raises(ClientError) as err:
        via_double.put_item(TableName=TABLE, Item=item("b", size=2900))

    assert error_code(err.value) == "ProvisionedThroughputExceededException"
    assert double.stats.items_throttled == 1


def test_a_hot_partition_key_is_limited_without_blocking_others(double: DynamoDBDouble,
                                                                tables: str) -> None:
    double.set_plan(FaultPlan(partition_key_wcu_s=10.0, burst_s=1.0))
    hot = [item("hot", sk={"N": str(n)}) for n in range(20)]
    cold = [item(f"cold{n}", sk={"N": "0"}) for n in range(5)]

    answer = client(double.url).batch_write_item(RequestItems=puts(hot + cold, SORTED_TABLE))

    left = answer["UnprocessedItems"][SORTED_TABLE]
    assert len(left) == 10
    assert {r["PutRequest"]["Item"]["pk"]["S"] for r in left} == {"hot"}
    assert stored_keys(tables, SORTED_TABLE) == {"hot"} | {f"cold{n}" for n in range(5)}


def test_null_sink_answers_success_and_writes_nothing(double: DynamoDBDouble,
                                                      tables: str) -> None:
    double.set_plan(FaultPlan(null_sink=True))
    via_double = client(double.url)
    items = [item(f"k{i}", size=1500) for i in range(25)]

    batch = via_double.batch_write_item(RequestItems=puts(items), ReturnConsumedCapacity="TOTAL")
    put = via_double.put_item(TableName=TABLE, Item=item("p"), ReturnConsumedCapacity="TOTAL")
    described = via_double.describe_table(TableName=TABLE)

    assert batch["UnprocessedItems"] == {}
    assert batch["ConsumedCapacity"] == [
        {"TableName": TABLE, "CapacityUnits": float(2 * len(items))}]
    assert put["ConsumedCapacity"]["CapacityUnits"] == 1.0
    assert described["Table"]["TableName"] == TABLE
    assert stored_keys(tables) == set()
    assert double.stats.items_accepted == len(items) + 1


def test_a_storm_throttles_a_span_of_write_requests(double: DynamoDBDouble) -> None:
    double.set_plan(FaultPlan(fail_after_requests=2, storm_requests=3))
    via_double = client(double.url)
    outcomes = []
    for n in range(7):
        try:
            via_double.put_item(TableName=TABLE, Item=item(f"k{n}"))
            outcomes.append("ok")
        except ClientError as err:
            outcomes.append(error_code(err))
        via_double.describe_table(TableName=TABLE)  # reads do not count towards the storm

    throttled = "ProvisionedThroughputExceededException"
    assert outcomes == ["ok", "ok", throttled, throttled, throttled, "ok", "ok"]


def test_concurrent_clients_are_counted_exactly(double: DynamoDBDouble, tables: str) -> None:
    def send(worker: int) -> None:
        via_double = client(double.url)
        for batch in range(4):
            via_double.batch_write_item(RequestItems=puts(
                [item(f"w{worker}-{batch}-{i}") for i in range(25)]))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert double.stats.items_accepted == 4 * 4 * 25
    assert double.stats.write_requests == 4 * 4
    assert len(stored_keys(tables)) == 4 * 4 * 25


def test_invalid_plans_are_refused_with_the_reason() -> None:
    with pytest.raises(DoubleError, match="between 0 and 1"):
        FaultPlan(throttle_share=1.5)
    with pytest.raises(DoubleError, match="throttle_code"):
        FaultPlan(throttle_code="SlowDown")
    with pytest.raises(DoubleError, match="unknown FaultPlan fields"):
        FaultPlan.from_json({"capacity": 10})


def admin(url: str, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Call an admin endpoint; GET without payload, POST with one."""
    data = None if payload is None else json.dumps(payload).encode()
    with urllib.request.urlopen(urllib.request.Request(url + path, data=data), timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_cli_serves_with_admin_endpoints(tables: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "local_aws.dynamodb_double", "--upstream", tables,
         "--capacity", "1500"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        client(url).put_item(TableName=TABLE, Item=item("a"))
        before = admin(url, "/__double/stats")
        plan = admin(url, "/__double/plan", {"throttle_share": 1.0})
        with pytest.raises(ClientError) as err:
            client(url).put_item(TableName=TABLE, Item=item("b"))
        with pytest.raises(urllib.error.HTTPError) as bad_plan:
            admin(url, "/__double/plan", {"no_such_field": 1})
        after = admin(url, "/__double/stats")
    finally:
        stop_process(process)

    assert url.startswith("http://127.0.0.1:")
    assert before["items_accepted"] == 1
    assert plan["throttle_share"] == 1.0
    assert plan["capacity_wcu_s"] is None  # a posted plan replaces the whole plan
    assert error_code(err.value) == "ProvisionedThroughputExceededException"
    assert bad_plan.value.code == 400
    assert after["items_throttled"] == 1
    assert process.returncode == 0
    assert stored_keys(tables) == {"a"}
