"""The BatchWriter against an AWS-like scripted endpoint on a simulated clock, and once
through botocore and real HTTP against the moto server."""

from __future__ import annotations

import copy
import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from dynamo_ingest.engine.rate import AdaptiveRateLimiter
from dynamo_ingest.engine.transport import (
    BatchRejectedError,
    BotocoreTransport,
    RetryableError,
    ThrottledError,
    TransportError,
    error_from_client_error,
)
from dynamo_ingest.engine.writer import (
    MAX_BATCH_BYTES,
    MAX_BATCH_ITEMS,
    BatchWriter,
    RetryPolicy,
    WriteOutcome,
    WriteRequest,
)

from local_aws.moto_server import free_port
from tests.glue_jobs.test_rate import SimulatedTime

TABLE = "orders"
Item = dict[str, dict[str, Any]]


def item_size(item: Item) -> int:
    """DynamoDB's size of an item of S and N attributes (names + UTF-8 values)."""
    return sum(len(name.encode()) + len(str(next(iter(value.values()))).encode())
               for name, value in item.items())


def request(position: int, key: str | None = None, payload: str = "x") -> WriteRequest:
    item = {"pk": {"S": key or f"k{position:05d}"}, "qty": {"N": str(position)},
            "note": {"S": payload}}
    size = item_size(item)
    return WriteRequest(position, position + 2, item, (item["pk"]["S"],), size,
                        max(1, math.ceil(size / 1024)))


def stream(count: int, **kwargs: str) -> Iterator[WriteRequest]:
    for position in range(count):
        yield request(position, **kwargs)


@dataclass
class Call:
    """One BatchWriteItem the endpoint received."""

    at: float
    keys: list[str]
    outcome: str
    unprocessed: list[str] = field(default_factory=list)


class ScriptedDynamo:
    """An AWS-like BatchWriteItem endpoint held in memory.

    Like AWS it rejects a batch of more than 25 requests, more than 16 MB or two requests for
    one key with ``ValidationException`` before anything else, rejects a whole batch holding
    a poisoned item, and hands items back as ``UnprocessedItems`` (as parsed copies, not the
    objects it was sent). Each call follows the next step of ``script`` (``ok``, ``throttle``,
    ``error``, ``unprocessed:N``, ``refuse``), then ``default``.
    """

    def __init__(self, time_: SimulatedTime, *, script: tuple[str, ...] = (),
                 default: str = "ok", poisoned: frozenset[str] = frozenset(),
                 report_capacity: bool = True, seed: int = 3) -> None:
        self._time = time_
        self._script = list(script)
        self._default = default
        self._poisoned = poisoned
        self._report_capacity = report_capacity
        self._rng = random.Random(seed)
        self.items: dict[str, Item] = {}
        self.puts: Counter[str] = Counter()
        self.calls: list[Call] = []

    def batch_write_item(self, request: dict[str, Any]) -> dict[str, Any]:
        assert request["ReturnConsumedCapacity"] == "TOTAL"
        if set(request["RequestItems"]) != {TABLE}:
            raise BatchRejectedError("ResourceNotFoundException", "Requested resource not found")
        items = [w["PutRequest"]["Item"] for w in request["RequestItems"][TABLE]]
        keys = [item["pk"]["S"] for item in items]
        call = Call(self._time.now, keys, "rejected")
        self.calls.append(call)
        if len(items) > MAX_BATCH_ITEMS:
            raise BatchRejectedError("ValidationException", (
                "1 validation error detected: Value at 'requestItems' failed to satisfy "
                "constraint: Map value must satisfy constraint: [Member must have length less "
                "than or equal to 25, Member must have length greater than or equal to 1]"))
        if len(set(keys)) != len(keys):
            raise BatchRejectedError("ValidationException",
                                     "Provided list of item keys contains duplicates")
        if sum(item_size(item) for item in items) > MAX_BATCH_BYTES:
            raise BatchRejectedError("ValidationException", "Item size has exceeded the "
                                     "maximum allowed size of the request")
        if self._poisoned.intersection(keys):
            raise BatchRejectedError("ValidationException", (
                "One or more parameter values were invalid: An AttributeValue may not contain "
                "an empty string"))
        call.outcome = self._script.pop(0) if self._script else self._default
        if call.outcome == "throttle":
            raise ThrottledError("ProvisionedThroughputExceededException",
                                 "The level of configured provisioned throughput for the table "
                                 "was exceeded. Consider increasing your provisioning level")
        if call.outcome == "error":
            raise RetryableError("InternalServerError", "Internal server error")
        if call.outcome == "refuse":
            raise BatchRejectedError("AccessDeniedException", "User is not authorized to perform "
                                     "dynamodb:BatchWriteItem")
        bounced: set[int] = set()
        if call.outcome.startswith("unprocessed:"):
            count = min(int(call.outcome.split(":")[1]), len(items))
            bounced = set(self._rng.sample(range(len(items)), count))
        written = 0
        for index, item in enumerate(items):
            if index in bounced:
                call.unprocessed.append(keys[index])
                continue
            self.items[keys[index]] = copy.deepcopy(item)
            self.puts[keys[index]] += 1
            written += math.ceil(item_size(item) / 1024)
        response: dict[str, Any] = {"UnprocessedItems": {}}
        if bounced:
            response["UnprocessedItems"] = {TABLE: [
                {"PutRequest": {"Item": copy.deepcopy(items[i])}} for i in sorted(bounced)]}
        if self._report_capacity:
            response["ConsumedCapacity"] = [{"TableName": TABLE, "CapacityUnits": float(written)}]
        return response


class RecordingLimiter(AdaptiveRateLimiter):
    """The real limiter, also recording what the writer asked of it."""

    def __init__(self, rate: float, time_: SimulatedTime) -> None:
        super().__init__(rate, clock=time_.clock, sleep=time_.sleep)
        self.acquired: list[int] = []
        self.events: list[str] = []

    def acquire(self, wcu: int) -> None:
        self.acquired.append(wcu)
        super().acquire(wcu)

    def on_throttle(self) -> None:
        self.events.append("throttle")
        super().on_throttle()

    def on_success(self) -> None:
        self.events.append("success")
        super().on_success()


def writer(endpoint: ScriptedDynamo, time_: SimulatedTime, **kwargs: Any) -> BatchWriter:
    return BatchWriter(endpoint, TABLE, sleep=time_.sleep, clock=time_.clock,
                       rng=random.Random(11), **kwargs)


MIXED_TROUBLE = ("unprocessed:10", "throttle", "throttle", "error", "ok", "unprocessed:25",
                 "unprocessed:1", "ok", "error", "unprocessed:7")


def test_every_item_is_written_exactly_once_through_throttles_errors_and_unprocessed() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=MIXED_TROUBLE)
    requests = list(stream(250))

    outcome = writer(endpoint, time_).write_all(requests)

    assert outcome.failed == []
    assert not outcome.exhausted
    assert endpoint.items == {r.key[0]: r.item for r in requests}
    assert set(endpoint.puts.values()) == {1}
    stats = outcome.stats
    assert stats.items_written == 250
    assert stats.requests == len(endpoint.calls)
    assert stats.retryable_errors == MIXED_TROUBLE.count("error")
    throttled = [c for c in endpoint.calls if c.outcome == "throttle" or c.unprocessed]
    assert stats.throttled_retries == len(throttled)
    assert stats.items_bounced == sum(len(c.unprocessed) or len(c.keys) for c in throttled)
    assert stats.wcu_consumed == sum(r.wcu for r in requests)


def test_unprocessed_items_alone_are_resent_and_only_after_a_backoff() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=MIXED_TROUBLE)

    writer(endpoint, time_).write_all(stream(250))

    calls = endpoint.calls
    resends = [(c, n) for c, n in itertools.pairwise(calls) if c.unprocessed]
    assert len(resends) == sum(step.startswith("unprocessed:") for step in MIXED_TROUBLE)
    for bounced, resend in resends:
        assert resend.keys == bounced.unprocessed
        assert resend.at > bounced.at  # the simulated clock only moves when the writer sleeps
    for failed, retry in itertools.pairwise(calls):
        if failed.outcome in ("throttle", "error"):
            assert retry.keys == failed.keys
            assert retry.at > failed.at


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=("throttle",) * 12)
    policy = RetryPolicy(max_retry_seconds=1000.0, base_delay_s=0.05, max_delay_s=20.0)

    writer(endpoint, time_, policy=policy).write_all(stream(5))

    same_draws = random.Random(11)
    expected = [same_draws.uniform(0.0, min(20.0, 0.05 * 2**attempt)) for attempt in range(12)]
    assert time_.sleeps == pytest.approx(expected)
    assert all(s > 0 for s in time_.sleeps)


def consumed_count(requests: Iterator[WriteRequest], seen: list[int]) -> Iterator[WriteRequest]:
    for r in requests:
        seen.append(r.position)
        yield r


def test_an_exhausted_budget_fails_exactly_the_unwritten_rows_and_stops_reading() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=("ok", "unprocessed:10"), default="throttle")
    prefixes: list[int] = []
    source = stream(100)

    outcome = writer(endpoint, time_, policy=RetryPolicy(max_retry_seconds=60.0),
                     on_acknowledged=prefixes.append).write_all(source)

    assert outcome.exhausted
    unwritten = set(endpoint.calls[1].unprocessed)
    assert {f.request.key[0] for f in outcome.failed} == unwritten
    assert len(outcome.failed) == 10
    assert unwritten.isdisjoint(endpoint.items)
    assert len(endpoint.items) == outcome.stats.items_written == 40
    reason = outcome.failed[0].reason
    assert "throttled for 60 s (ProvisionedThroughputExceededException)" in reason
    assert "--max_retry_seconds" in reason
    assert next(source).position == 50  # nothing after the failed batch was consumed
    assert 60.0 <= time_.now - 1000.0 < 61.0
    first_unwritten = min(f.request.position for f in outcome.failed)
    assert prefixes == sorted({25, first_unwritten})


def test_a_row_read_ahead_by_the_size_limit_is_reported_when_the_writer_stops() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, default="error")
    seen: list[int] = []
    source = consumed_count(stream(60, payload="y" * 700_000), seen)

    outcome = writer(endpoint, time_, policy=RetryPolicy(max_retry_seconds=5.0)).write_all(source)

    per_batch = MAX_BATCH_BYTES // request(0, payload="y" * 700_000).size
    assert outcome.exhausted
    assert [f.request.position for f in outcome.failed] == seen == list(range(per_batch + 1))
    assert "kept failing for 5 s (InternalServerError: Internal server error)" in (
        outcome.failed[0].reason)
    assert "stopped before this row was sent" in outcome.failed[-1].reason
    assert endpoint.items == {}


def test_a_rejected_batch_is_split_to_isolate_the_bad_item() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, poisoned=frozenset({"k00037"}))
    prefixes: list[int] = []
    requests = list(stream(60))

    outcome = writer(endpoint, time_, on_acknowledged=prefixes.append).write_all(requests)

    assert not outcome.exhausted
    assert [(f.request.position, f.request.record_no) for f in outcome.failed] == [(37, 39)]
    assert "An AttributeValue may not contain an empty string" in outcome.failed[0].reason
    assert endpoint.items == {r.key[0]: r.item for r in requests if r.position != 37}
    assert set(endpoint.puts.values()) == {1}
    assert [len(c.keys) for c in endpoint.calls] == [25, 25, *[1] * 25, 10]
    assert prefixes == [25, 37]  # nothing at or past the unwritten row counts as written


def test_a_refusal_that_no_item_causes_stops_without_splitting() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=("ok", "refuse"))
    source = stream(80)

    outcome = writer(endpoint, time_).write_all(source)

    assert outcome.exhausted
    assert [f.request.position for f in outcome.failed] == list(range(25, 50))
    assert "AccessDeniedException" in outcome.failed[0].reason
    assert len(endpoint.calls) == 2
    assert next(source).position == 50


def test_acknowledged_prefix_only_covers_written_items_and_ends_at_the_stream_length() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=MIXED_TROUBLE)
    requests = list(stream(240))
    prefixes: list[int] = []

    def on_acknowledged(prefix: int) -> None:
        assert {r.key[0] for r in requests[:prefix]} <= endpoint.items.keys()
        prefixes.append(prefix)

    writer(endpoint, time_, on_acknowledged=on_acknowledged).write_all(requests)

    assert prefixes == sorted(set(prefixes))
    assert prefixes[-1] == 240


def test_batches_hold_at_most_25_requests_16_mb_and_distinct_keys() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_)
    big = "z" * 700_000
    requests = [request(p) for p in range(50)]
    requests += [request(p, payload=big) for p in range(50, 80)]
    requests += [request(80, key="again"), request(81), request(82, key="again"), request(83)]

    outcome = writer(endpoint, time_).write_all(requests)

    assert outcome.failed == []
    sizes = {r.key[0]: r.size for r in requests}
    assert all(len(c.keys) <= MAX_BATCH_ITEMS for c in endpoint.calls)
    assert all(sum(sizes[k] for k in c.keys) <= MAX_BATCH_BYTES for c in endpoint.calls)
    assert all(len(set(c.keys)) == len(c.keys) for c in endpoint.calls)
    per_big_batch = MAX_BATCH_BYTES // request(50, payload=big).size
    assert per_big_batch < MAX_BATCH_ITEMS
    assert [len(c.keys) for c in endpoint.calls] == [
        25, 25, per_big_batch, 30 - per_big_batch + 2, 2]
    assert endpoint.items["again"] == requests[-2].item


def test_the_limiter_paces_every_request_and_hears_throttles_and_successes() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=("ok", "unprocessed:5", "ok", "throttle", "ok"))
    pacer = RecordingLimiter(100.0, time_)
    requests = list(stream(100))

    writer(endpoint, time_, limiter=pacer).write_all(requests)

    wcu = {r.key[0]: r.wcu for r in requests}
    assert pacer.acquired == [sum(wcu[k] for k in c.keys) for c in endpoint.calls]
    assert pacer.events == ["success", "throttle", "success", "throttle", "success", "success"]
    assert time_.now - 1000.0 >= (sum(pacer.acquired) - 100.0 * 0.25) / 100.0


def test_without_consumed_capacity_the_items_own_wcu_are_counted() -> None:
    time_ = SimulatedTime()
    endpoint = ScriptedDynamo(time_, script=("unprocessed:4",), report_capacity=False)
    requests = [request(p, payload="w" * (p * 60)) for p in range(40)]

    outcome = writer(endpoint, time_).write_all(requests)

    assert outcome.stats.wcu_consumed == sum(r.wcu for r in requests) > len(requests)


@pytest.mark.parametrize(("code", "status", "expected", "item_level"), [
    ("ProvisionedThroughputExceededException", 400, ThrottledError, False),
    ("ThrottlingException", 400, ThrottledError, False),
    ("RequestLimitExceeded", 400, ThrottledError, False),
    ("InternalServerError", 500, RetryableError, False),
    ("ServiceUnavailable", 503, RetryableError, False),
    ("SomethingNew", 502, RetryableError, False),
    ("ValidationException", 400, BatchRejectedError, True),
    ("ItemCollectionSizeLimitExceededException", 400, BatchRejectedError, True),
    ("AccessDeniedException", 400, BatchRejectedError, False),
    ("ResourceNotFoundException", 400, BatchRejectedError, False),
])
def test_client_errors_are_classified_like_dynamodb_documents_them(
        code: str, status: int, expected: type[TransportError], item_level: bool) -> None:
    parsed: Any = {"Error": {"Code": code, "Message": "the AWS message"},
                   "ResponseMetadata": {"HTTPStatusCode": status}}
    err = ClientError(parsed, "BatchWriteItem")

    mapped = error_from_client_error(err)

    assert type(mapped) is expected
    assert str(mapped) == f"{code}: the AWS message"
    assert isinstance(mapped, BatchRejectedError) is (expected is BatchRejectedError)
    if isinstance(mapped, BatchRejectedError):
        assert mapped.item_level is item_level


def test_a_refused_connection_is_retryable() -> None:
    transport = BotocoreTransport.from_config(f"http://127.0.0.1:{free_port()}", "us-east-1",
                                              ("testing", "testing", None))
    with pytest.raises(RetryableError) as caught:
        transport.batch_write_item({"RequestItems": {TABLE: [
            {"PutRequest": {"Item": {"pk": {"S": "a"}}}}]}, "ReturnConsumedCapacity": "TOTAL"})
    assert caught.value.code == "EndpointConnectionError"
    assert isinstance(caught.value.__cause__, Exception)


def test_items_arrive_exactly_through_botocore_and_real_http(aws: str) -> None:
    client = boto3.client("dynamodb", endpoint_url=aws, region_name="us-east-1")
    client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    requests = []
    for position in range(300):
        item: Item = {"pk": {"S": f"k{position:04d}"}, "qty": {"N": str(position * 7 - 3)},
                      "note": {"S": "é" * (position % 5 + 1)}, "ok": {"BOOL": position % 2 == 0},
                      "raw": {"B": bytes([position % 256, 0, 255])}, "gone": {"NULL": True},
                      "tags": {"L": [{"S": "a"}, {"N": "1.5"}]}, "meta": {"M": {"v": {"N": "2"}}}}
        requests.append(WriteRequest(position, position + 2, item, (item["pk"]["S"],), 60, 1))
    transport = BotocoreTransport.from_config(endpoint_url=aws, region="us-east-1",
                                              credentials=("testing", "testing", None))
    prefixes: list[int] = []

    outcome: WriteOutcome = BatchWriter(transport, TABLE,
                                        on_acknowledged=prefixes.append).write_all(requests)

    assert (outcome.failed, outcome.exhausted) == ([], False)
    assert outcome.stats.requests == 300 // MAX_BATCH_ITEMS
    assert outcome.stats.wcu_consumed > 0
    assert prefixes[-1] == 300
    stored = [item for page in client.get_paginator("scan").paginate(TableName=TABLE)
              for item in page["Items"]]
    assert sorted(stored, key=lambda i: i["pk"]["S"]) == [r.item for r in requests]
    with pytest.raises(BatchRejectedError, match="duplicates") as caught:
        transport.batch_write_item({"RequestItems": {TABLE: [
            {"PutRequest": {"Item": requests[0].item}}] * 2}})
    assert caught.value.item_level
