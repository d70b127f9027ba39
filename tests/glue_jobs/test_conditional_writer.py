"""The conditional write modes against moto over HTTP (and the AWS-like double for faults):
insert keeps existing items, merge keeps other attributes, the version guard converges to the
newest versions whatever the order of the files."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import boto3
import pytest
from dynamo_ingest.core.catalog import Column
from dynamo_ingest.core.errors import ArgumentError
from dynamo_ingest.core.keys import KeyAttribute, KeySchema
from dynamo_ingest.core.mapping import AttributeMapping
from dynamo_ingest.engine.conditional_writer import (
    BotocoreConditionalTransport,
    ConditionalWriteOutcome,
    ConditionalWriter,
    RequestBuilder,
    same_item,
)
from dynamo_ingest.engine.items import BuiltItem, ItemBuilder
from dynamo_ingest.engine.rate import AdaptiveRateLimiter
from dynamo_ingest.engine.writer import RetryPolicy, WriteRequest

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from tests.glue_jobs.conftest import create_table, scan_table
from tests.glue_jobs.test_rate import SimulatedTime

TABLE = "orders"
KEYS = KeySchema(KeyAttribute("id", "S"))
COLUMNS = [Column("id"), Column("name"), Column("qty", "bigint"), Column("version", "bigint")]
FAST = RetryPolicy(max_retry_seconds=5.0, base_delay_s=0.001, max_delay_s=0.01)


def requests(rows: Sequence[Sequence[str | None]], *, version: bool = False,
             columns: Sequence[Column] = COLUMNS, keys: KeySchema = KEYS) -> list[WriteRequest]:
    """Rows → write requests through the job's own item builder."""
    names = [c.name for c in columns]
    # qty is an explicit N: its 0.50s are numbers DynamoDB stores normalised, as 0.5.
    mapping = AttributeMapping(column_types=(("qty", "N"),) if "qty" in names else (),
                               version_column="version" if version else None)
    builder = ItemBuilder(columns, keys, "omit", mapping)
    out = []
    for position, row in enumerate(rows):
        built = builder.build(row)
        assert isinstance(built, BuiltItem), built
        out.append(WriteRequest(position, position + 1, built.item, built.key, built.size,
                                built.wcu))
    return out


def writer(url: str | None = None, mode: str = "insert", version: str | None = None,
           **kwargs: Any) -> ConditionalWriter:
    endpoint = url or boto3.client("dynamodb").meta.endpoint_url
    transport = BotocoreConditionalTransport.from_config(endpoint, "us-east-1",
                                                         ("testing", "testing", None))
    kwargs.setdefault("policy", FAST)
    return ConditionalWriter(transport, RequestBuilder(TABLE, KEYS, mode, version),  # type: ignore[arg-type]
                             **kwargs)


def put(items: list[dict[str, Any]]) -> None:
    client = boto3.client("dynamodb")
    for item in items:
        client.put_item(TableName=TABLE, Item=item)


def assert_accounted(outcome: ConditionalWriteOutcome, sent: int) -> None:
    done = (outcome.stats.items_written + outcome.items_skipped_existing
            + outcome.items_skipped_stale + len(outcome.failed))
    assert done == sent


@pytest.fixture
def table(aws: str) -> str:
    create_table(TABLE, [("id", "S", "HASH")])
    return aws


# --- request bodies ------------------------------------------------------------------------

def test_insert_puts_only_when_the_key_is_absent() -> None:
    operation, body = RequestBuilder(TABLE, KEYS, "insert").body({"id": {"S": "a"}})
    assert operation == "put_item"
    assert body["ConditionExpression"] == "attribute_not_exists(#pk)"
    assert body["ExpressionAttributeNames"] == {"#pk": "id"}
    assert body["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert body["ReturnConsumedCapacity"] == "TOTAL"


def test_merge_sets_every_non_key_attribute_and_never_the_key() -> None:
    item = {"id": {"S": "a"}, "name": {"S": "x"}, "qty": {"N": "2"}}
    operation, body = RequestBuilder(TABLE, KEYS, "merge").body(item)
    assert operation == "update_item"
    assert body["Key"] == {"id": {"S": "a"}}
    assert body["UpdateExpression"] == "SET #a0 = :a0, #a1 = :a1"
    assert body["ExpressionAttributeNames"] == {"#a0": "name", "#a1": "qty"}
    assert body["ExpressionAttributeValues"] == {":a0": {"S": "x"}, ":a1": {"N": "2"}}
    assert "ConditionExpression" not in body


def test_the_version_guard_compares_the_stored_version() -> None:
    item = {"id": {"S": "a"}, "version": {"N": "3"}}
    for mode in ("overwrite", "merge"):
        _, body = RequestBuilder(TABLE, KEYS, mode, "version").body(item)  # type: ignore[arg-type]
        assert body["ConditionExpression"] == (
            "attribute_not_exists(#pk) OR attribute_not_exists(#v) OR #v <= :v")
        assert body["ExpressionAttributeNames"]["#v"] == "version"
        assert body["ExpressionAttributeValues"][":v"] == {"N": "3"}


def test_impossible_combinations_are_argument_errors() -> None:
    with pytest.raises(ArgumentError, match="insert"):
        RequestBuilder(TABLE, KEYS, "insert", "version")
    with pytest.raises(ArgumentError, match="BatchWriteItem"):
        RequestBuilder(TABLE, KEYS, "overwrite")
    with pytest.raises(ArgumentError, match="key attribute"):
        RequestBuilder(TABLE, KEYS, "merge", "id")


def test_same_item_compares_numbers_by_value_and_sets_in_any_order() -> None:
    ours = {"id": {"S": "a"}, "n": {"N": "1.50"}, "s": {"SS": ["x", "y"]},
            "m": {"M": {"k": {"L": [{"N": "01"}]}}}}
    stored = {"id": {"S": "a"}, "n": {"N": "1.5"}, "s": {"SS": ["y", "x"]},
              "m": {"M": {"k": {"L": [{"N": "1"}]}}}}
    assert same_item(stored, ours)
    assert not same_item({**stored, "n": {"N": "1.51"}}, ours)
    assert not same_item({**stored, "extra": {"S": "z"}}, ours)
    assert not same_item({**stored, "n": {"S": "1.5"}}, ours)


# --- modes against moto over HTTP ----------------------------------------------------------

def test_insert_keeps_existing_items_and_counts_them(table: str) -> None:
    put([{"id": {"S": "1"}, "name": {"S": "old"}}, {"id": {"S": "3"}, "name": {"S": "older"}}])
    rows = [["1", "new", "1", None], ["2", "b", "2", None], ["3", "c", "3", None],
            ["4", "d", "4", None]]
    acknowledged: list[int] = []
    sink = writer(on_acknowledged=acknowledged.append)

    outcome = sink.write_all(requests(rows))

    assert (outcome.stats.items_written, outcome.items_skipped_existing) == (2, 2)
    assert outcome.items_skipped_stale == 0
    assert not outcome.failed
    assert not outcome.exhausted
    assert_accounted(outcome, 4)
    stored = scan_table(TABLE)
    assert stored[("1",)]["name"] == {"S": "old"}
    assert stored[("3",)]["name"] == {"S": "older"}
    assert stored[("2",)] == {"id": {"S": "2"}, "name": {"S": "b"}, "qty": {"N": "2"}}
    assert acknowledged[-1] == 4
    assert acknowledged == sorted(acknowledged)
    # Below each acknowledged position the pipeline can tell skipped from written items.
    assert [sink.skipped_before(n) for n in range(5)] == [(0, 0), (1, 0), (1, 0), (2, 0), (2, 0)]


def test_insert_resending_its_own_items_counts_them_written(table: str) -> None:
    rows = [[str(i), f"n{i}", f"{i}.50", None] for i in range(6)]
    first = writer().write_all(requests(rows))
    again = writer().write_all(requests(rows))  # e.g. a resumed attempt re-sending its tail
    assert first.stats.items_written == again.stats.items_written == 6
    assert again.items_skipped_existing == 0
    # A failed condition is charged: the stored item's write units, not zero.
    assert again.stats.wcu_consumed >= 6


def test_merge_updates_the_rows_attributes_and_keeps_the_others(table: str) -> None:
    put([{"id": {"S": "1"}, "name": {"S": "old"}, "qty": {"N": "7"}, "extra": {"S": "keep"}}])
    rows = [["1", "new", None, None], ["2", "b", "2", None], ["3", None, None, None]]

    outcome = writer(mode="merge").write_all(requests(rows))

    assert outcome.stats.items_written == 3
    assert not outcome.failed
    stored = scan_table(TABLE)
    # The empty qty leaves the stored 7: merge sets only the row's non-empty columns.
    assert stored[("1",)] == {"id": {"S": "1"}, "name": {"S": "new"}, "qty": {"N": "7"},
                              "extra": {"S": "keep"}}
    assert stored[("2",)] == {"id": {"S": "2"}, "name": {"S": "b"}, "qty": {"N": "2"}}
    assert stored[("3",)] == {"id": {"S": "3"}}  # a key-only row still creates its item


# Overlapping keys 1-3; key 3 has the same version (and content) in both files.
FILE_A = [["1", "a-v2", "1", "2"], ["2", "a-v1", "1", "1"], ["3", "same", "5", "5"],
          ["4", "a-v1", "1", "1"]]
FILE_B = [["1", "b-v1", "2", "1"], ["2", "b-v3", "2", "3"], ["3", "same", "5", "5"],
          ["5", "b-v1", "2", "1"]]


def newest(*files: list[list[str]]) -> dict[str, list[str]]:
    """Key → its row with the highest version across the files."""
    best: dict[str, list[str]] = {}
    for rows in files:
        for row in rows:
            if row[0] not in best or int(row[3]) > int(best[row[0]][3]):
                best[row[0]] = row
    return best


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_the_version_guard_converges_whatever_the_order_of_the_files(table: str,
                                                                     mode: str) -> None:
    create_table("orders_ab", [("id", "S", "HASH")])
    endpoint = boto3.client("dynamodb").meta.endpoint_url
    outcomes = {}
    for target, order in (("orders_ab", (FILE_A, FILE_B)), (TABLE, (FILE_B, FILE_A))):
        for index, rows in enumerate(order):
            transport = BotocoreConditionalTransport.from_config(
                endpoint, "us-east-1", ("testing", "testing", None))
            sink = ConditionalWriter(transport, RequestBuilder(target, KEYS, mode, "version"),  # type: ignore[arg-type]
                                     policy=FAST)
            outcomes[(target, index)] = sink.write_all(requests(rows, version=True))

    ab, ba = scan_table("orders_ab"), scan_table(TABLE)
    assert ab == ba
    expected = {(key,): item.item for key, item in (
        (row[0], ItemBuilder(COLUMNS, KEYS).build(row)) for row in newest(FILE_A, FILE_B).values())
        if isinstance(item, BuiltItem)}
    assert ab == expected
    # A then B: B's key 1 (v1 < v2) is stale; B then A: A's key 2 (v1 < v3) is stale.
    assert outcomes[("orders_ab", 1)].items_skipped_stale == 1
    assert outcomes[(TABLE, 1)].items_skipped_stale == 1
    for outcome in outcomes.values():
        assert_accounted(outcome, 4)


def test_the_version_guard_replaces_stored_items_that_have_no_version(table: str) -> None:
    put([{"id": {"S": "1"}, "name": {"S": "unversioned"}}])
    outcome = writer(mode="overwrite", version="version").write_all(
        requests([["1", "versioned", "1", "1"]], version=True))
    assert outcome.stats.items_written == 1
    assert outcome.items_skipped_stale == 0
    assert scan_table(TABLE)[("1",)]["name"] == {"S": "versioned"}


# --- failures, pacing and concurrency --------------------------------------------------------

def test_an_item_dynamodb_rejects_is_failed_and_the_others_are_written(table: str) -> None:
    good = requests([["1", "a", "1", None], ["3", "c", "3", None]])
    bad = WriteRequest(1, 2, {"id": {"N": "2"}}, ("2",), 3, 1)  # wrong key type
    stream = [good[0], bad, WriteRequest(2, 3, *vars_of(good[1]))]
    acknowledged: list[int] = []

    outcome = writer(on_acknowledged=acknowledged.append).write_all(stream)

    assert outcome.stats.items_written == 2
    assert not outcome.exhausted
    assert [f.request.record_no for f in outcome.failed] == [2]
    assert "ValidationException" in outcome.failed[0].reason
    assert acknowledged[-1] == 1  # the rejected row fixes the acknowledged prefix


def vars_of(request: WriteRequest) -> tuple[Any, ...]:
    return request.item, request.key, request.size, request.wcu


def test_a_missing_table_stops_the_writer_and_every_consumed_row_is_reported(aws: str) -> None:
    consumed = 0

    def stream() -> Iterator[WriteRequest]:
        nonlocal consumed
        for request in requests([[str(i), "x", "1", None] for i in range(100)]):
            consumed += 1
            yield request

    outcome = writer(concurrency=4).write_all(stream())

    assert outcome.exhausted
    assert outcome.stats.items_written == 0
    assert consumed < 100
    assert len(outcome.failed) == consumed
    assert all("not written" in f.reason for f in outcome.failed)
    assert "ResourceNotFoundException" in outcome.failed[0].reason


def test_throttling_is_retried_until_every_item_is_written(table: str) -> None:
    rows = [[str(i), "x" * (i * 97 % 1500), "1", None] for i in range(40)]
    stream = requests(rows)
    with DynamoDBDouble(table, FaultPlan(throttle_share=0.4, seed=3)) as double:
        outcome = writer(double.url, mode="insert").write_all(stream)
    assert outcome.stats.items_written == 40
    assert not outcome.failed
    assert outcome.stats.throttled_retries > 0
    # The double's ConsumedCapacity is computed from item sizes like AWS.
    assert outcome.stats.wcu_consumed == sum(r.wcu for r in stream)
    assert len(scan_table(TABLE)) == 40


def test_a_throttling_storm_exhausts_the_retry_budget(table: str) -> None:
    policy = RetryPolicy(max_retry_seconds=0.05, base_delay_s=0.001, max_delay_s=0.005)
    with DynamoDBDouble(table, FaultPlan(throttle_share=1.0)) as double:
        outcome = writer(double.url, policy=policy, concurrency=2).write_all(
            requests([[str(i), "x", "1", None] for i in range(20)]))
    assert outcome.exhausted
    assert outcome.stats.items_written == 0
    assert "--max_retry_seconds" in outcome.failed[0].reason
    assert_accounted(outcome, len(outcome.failed))


class InFlight:
    """Wraps a transport and records how many requests were in flight at once."""

    def __init__(self, inner: BotocoreConditionalTransport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        # The first two requests wait for each other in flight, so overlap does not hang on
        # the scheduler; a writer sending one at a time breaks the barrier (after 60 s).
        self._first_two = threading.Barrier(2, timeout=60)
        self.calls = 0
        self.now = 0
        self.peak = 0

    def _call(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.calls += 1
            first_two = self.calls <= 2
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            if first_two:
                self._first_two.wait()
            return getattr(self._inner, operation)(request)  # type: ignore[no-any-return]
        finally:
            with self._lock:
                self.now -= 1

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("put_item", request)

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._call("update_item", request)


def test_several_requests_are_in_flight_at_once(table: str) -> None:
    with DynamoDBDouble(table, FaultPlan(latency_s=0.02)) as double:
        counting = InFlight(BotocoreConditionalTransport.from_config(
            double.url, "us-east-1", ("testing", "testing", None)))
        sink = ConditionalWriter(counting, RequestBuilder(TABLE, KEYS, "merge"), policy=FAST,
                                 concurrency=4)
        outcome = sink.write_all(requests([[str(i), "x", "1", None] for i in range(24)]))
    assert outcome.stats.items_written == 24
    assert 1 < counting.peak <= 4


def test_writes_are_paced_by_the_limiter(table: str) -> None:
    time_ = SimulatedTime()
    limiter = AdaptiveRateLimiter(20.0, clock=time_.clock, sleep=time_.sleep)
    stream = requests([[str(i), "x" * 1500, "1", None] for i in range(30)])  # 2 WCU each

    outcome = writer(limiter=limiter).write_all(stream)

    assert outcome.stats.items_written == 30
    # 60 WCU at 20 WCU/s, less the bucket's initial burst, on the simulated clock.
    assert time_.now - 1000.0 == pytest.approx(60 / 20.0 - 0.25, abs=0.15)
