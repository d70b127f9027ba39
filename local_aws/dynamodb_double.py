"""An AWS-like DynamoDB endpoint in front of an upstream one (the moto server).

moto accepts every write at once; AWS throttles, returns ``UnprocessedItems`` and has
capacity. This double speaks the DynamoDB JSON protocol over real HTTP, forwards to the
upstream and changes what AWS would change: write capacity (table and partition-key token
buckets), throttling, unprocessed items, 5xx answers, connection resets, latency, duplicate-key
validation and its own ``ConsumedCapacity``. Faults apply to write operations only; every other
operation (DescribeTable, Scan, Query, …) passes through unchanged.

Run it in another process with ``python -m local_aws.dynamodb_double --upstream URL``; the
admin endpoints ``GET /__double/stats``, ``POST /__double/plan`` and
``POST /__double/reset-stats`` drive it there.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, NoReturn
from urllib.parse import urlsplit

from dynamo_ingest.core.errors import DynamoIngestError

from local_aws.served import Served

if TYPE_CHECKING:
    from dynamo_ingest.core.keys import KeySchema

WRITE_OPERATIONS: Final = frozenset({"BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem"})
THROTTLE_CODES: Final = ("ProvisionedThroughputExceededException", "ThrottlingException")
ADMIN_PREFIX: Final = "/__double/"
_ERROR_NAMESPACE: Final = "com.amazonaws.dynamodb.v20120810#"
_JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.0"
_THROTTLE_MESSAGES: Final = {
    "ProvisionedThroughputExceededException":
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    "ThrottlingException":
        "Throughput exceeds the current capacity of your table or index. DynamoDB is "
        "automatically scaling your table or index so please try again shortly.",
}
# Partition buckets idle for a full burst window are full again, so they can be forgotten.
_PRUNE_PARTITIONS_ABOVE: Final = 50_000


class DoubleError(DynamoIngestError):
    """The DynamoDB double was configured or started with values it cannot use."""


@dataclass
class FaultPlan:
    """What the double does to write requests; shares are probabilities in [0, 1]."""

    throttle_share: float = 0.0
    throttle_code: str = "ProvisionedThroughputExceededException"
    unprocessed_share: float = 0.0
    error_5xx_share: float = 0.0
    reset_share: float = 0.0
    latency_s: float = 0.0
    capacity_wcu_s: float | None = None
    partition_key_wcu_s: float | None = None
    burst_s: float = 1.0
    reject_duplicate_keys: bool = True
    null_sink: bool = False
    # A throttling storm: write requests number fail_after_requests … (+ storm_requests) since
    # the plan was set are all throttled; storm_requests None means until another plan is set.
    fail_after_requests: int | None = None
    storm_requests: int | None = None
    # Only writes to these tables see faults and capacity (None: every table). In AWS the
    # ledger table has its own capacity, so tests scope a storm to the target table.
    tables: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("throttle_share", "unprocessed_share", "error_5xx_share", "reset_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DoubleError(f"FaultPlan.{name} must be a share between 0 and 1, found "
                                  f"{value!r}: pass e.g. 0.1 for one request in ten")
        if self.throttle_code not in THROTTLE_CODES:
            raise DoubleError(f"FaultPlan.throttle_code must be one of {THROTTLE_CODES}, found "
                              f"{self.throttle_code!r}")
        for name in ("capacity_wcu_s", "partition_key_wcu_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise DoubleError(f"FaultPlan.{name} must be a positive WCU/s or None (no "
                                  f"limit), found {value!r}")
        if self.latency_s < 0 or self.burst_s <= 0:
            raise DoubleError(f"FaultPlan.latency_s must be >= 0 and burst_s > 0, found "
                              f"latency_s={self.latency_s!r}, burst_s={self.burst_s!r}")
        for name in ("fail_after_requests", "storm_requests"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise DoubleError(f"FaultPlan.{name} must be a request count >= 0 or None, "
                                  f"found {value!r}")

    def storm_covers(self, write_request_index: int) -> bool:
        """True when the write request with this 0-based index (since the plan) is in the storm."""
        if self.fail_after_requests is None and self.storm_requests is None:
            return False
        start = self.fail_after_requests or 0
        return write_request_index >= start and (
            self.storm_requests is None or write_request_index < start + self.storm_requests)

    @classmethod
    def from_json(cls, fields: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from JSON fields, naming any field the plan does not have."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise DoubleError(f"unknown FaultPlan fields {unknown}: expected some of "
                              f"{sorted(known)}")
        values = dict(fields)
        if values.get("tables") is not None:
            values["tables"] = tuple(values["tables"])
        return cls(**values)


@dataclass
class DoubleStats:
    """Counters of what the double did (a snapshot when read from ``DynamoDBDouble.stats``)."""

    requests: int = 0
    write_requests: int = 0
    items_accepted: int = 0
    items_unprocessed: int = 0
    items_throttled: int = 0
    duplicate_key_rejections: int = 0
    errors_5xx: int = 0
    resets: int = 0
    wcu_accepted: float = 0.0
    wcu_by_second: dict[int, float] = field(default_factory=dict)

    def peak_wcu_per_second(self) -> float:
        """The most WCU accepted in any one whole second since the double started."""
        return max(self.wcu_by_second.values(), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """A JSON-able form (the admin stats endpoint)."""
        out = dataclasses.asdict(self)
        out["wcu_by_second"] = {str(k): v for k, v in self.wcu_by_second.items()}
        out["peak_wcu_per_second"] = self.peak_wcu_per_second()
        return out


@dataclass
class _Reply:
    """An HTTP answer; ``reset`` means close the connection without one."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False


def _json_reply(status: int, payload: Mapping[str, Any]) -> _Reply:
    body = json.dumps(payload).encode()
    return _Reply(status, body, {
        "Content-Type": _JSON_CONTENT_TYPE,
        "x-amzn-RequestId": uuid.uuid4().hex.upper(),
        # botocore checks DynamoDB bodies against this CRC32 (and retries on a mismatch).
        "x-amz-crc32": str(zlib.crc32(body)),
    })


def _error_reply(status: int, code: str, message: str) -> _Reply:
    # AWS's shape; botocore takes the error code from the part after '#'.
    return _json_reply(status, {"__type": _ERROR_NAMESPACE + code, "message": message})


class _TokenBucket:
    """Write capacity refilled continuously at ``rate`` WCU/s, holding up to ``burst`` WCU."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst_s: float, now: float) -> None:
        self.rate = rate
        self.burst = rate * burst_s
        self.tokens = self.burst
        self.updated = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def fits(self, wcu: float) -> bool:
        # A full bucket takes any item, else an item bigger than the burst would never fit.
        return self.tokens >= wcu or self.tokens >= self.burst


class _Upstream:
    """POSTs to the upstream endpoint on one kept-alive connection per server thread."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DoubleError(f"upstream must be an http(s) URL like http://127.0.0.1:5000, "
                              f"found {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout_s)
            self._local.conn = conn
        return conn

    def post(self, body: bytes, headers: Mapping[str, str]) -> _Reply:
        """Send one request; a kept-alive connection the upstream closed is retried once."""
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request("POST", "/", body=body, headers=dict(headers))
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                conn.close()
                self._local.conn = None
            kept = {k: v for k, v in response.getheaders()
                    if k.lower() in ("content-type", "x-amzn-requestid", "x-amz-crc32")}
            return _Reply(response.status, data, kept)
        raise AssertionError("unreachable")  # pragma: no cover


def _item_wcu(item: Mapping[str, Any]) -> int:
    # Imported lazily; dynamo_ingest.engine.sizing holds the project's one WCU formula.
    from dynamo_ingest.engine.sizing import item_size, write_units
    from dynamo_ingest.engine.transport import decode_wire_binaries

    return write_units(item_size({name: decode_wire_binaries(dict(v)) for name, v in item.items()}))


def _attribute_identity(value: Mapping[str, Any]) -> tuple[str, str]:
    kind, raw = next(iter(value.items()))
    return kind, raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True)


class _RefusalError(Exception):
    """A request the double answers itself (an AWS error or a reset)."""

    def __init__(self, reply: _Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


@dataclass
class _Write:
    """One put or delete of a BatchWriteItem (or a single write), with its cost and keys."""

    table: str
    request: dict[str, Any]
    wcu: int
    partition: tuple[str, str] | None


class DynamoDBDouble(Served):
    """A ThreadingHTTPServer on ``127.0.0.1`` that behaves like DynamoDB under a FaultPlan."""

    thread_name = "dynamodb-double"

    def __init__(self, upstream_url: str | None, plan: FaultPlan | None = None,
                 port: int = 0) -> None:
        super().__init__()
        self._upstream = _Upstream(upstream_url) if upstream_url else None
        self._port = port
        self._lock = threading.Lock()
        self._started_at = time.monotonic()
        self._stats = DoubleStats()
        self._key_schemas: dict[str, KeySchema] = {}
        self._install_plan(plan or FaultPlan())

    # -- lifecycle -------------------------------------------------------------------------

    def _new_server(self) -> ThreadingHTTPServer:
        return _Server(("127.0.0.1", self._port), self)

    # -- plan and stats --------------------------------------------------------------------

    def _install_plan(self, plan: FaultPlan) -> None:
        now = time.monotonic()
        self._plan = plan
        self._rng = random.Random(plan.seed)
        self._plan_write_requests = 0
        self._table_buckets: dict[str, _TokenBucket] = {}
        self._partition_buckets: dict[tuple[str, tuple[str, str]], _TokenBucket] = {}
        self._last_prune = now

    def set_plan(self, plan: FaultPlan) -> None:
        """Switch to a new plan: fresh (full) capacity buckets, RNG reseeded, storm re-armed."""
        with self._lock:
            self._install_plan(plan)

    @property
    def plan(self) -> FaultPlan:
        """The plan in force."""
        return self._plan

    @property
    def stats(self) -> DoubleStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return dataclasses.replace(self._stats, wcu_by_second=dict(self._stats.wcu_by_second))

    def second_now(self) -> int:
        """The second of ``DoubleStats.wcu_by_second`` that is going on now (to mark where
        a test's phases begin and end in the double's own counts)."""
        return int(time.monotonic() - self._started_at)

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._stats = DoubleStats()

    # -- request handling ------------------------------------------------------------------

    def handle(self, operation: str, body: bytes, headers: Mapping[str, str]) -> _Reply:
        """Answer one DynamoDB request (called by the HTTP handler's threads)."""
        with self._lock:
            plan = self._plan
            self._stats.requests += 1
        if plan.latency_s:
            time.sleep(plan.latency_s)
        if operation in ("CreateTable", "DeleteTable", "UpdateTable"):
            self._forget_key_schema(body)
        if operation not in WRITE_OPERATIONS:
            return self._forward(body, headers)
        try:
            return self._handle_write(operation, body, headers)
        except _RefusalError as refusal:
            return refusal.reply

    def _handle_write(self, operation: str, body: bytes, headers: Mapping[str, str]) -> _Reply:
        request = json.loads(body)
        scope = self._plan.tables
        if scope is not None:
            tables = (set(request.get("RequestItems", {})) if operation == "BatchWriteItem"
                      else {request.get("TableName", "")})
            if not tables & set(scope):
                return self._forward(body, headers)
        with self._lock:
            plan = self._plan
            index = self._plan_write_requests
            self._plan_write_requests += 1
            self._stats.write_requests += 1
            draw_reset, draw_5xx, draw_throttle = (self._rng.random() for _ in range(3))
            if draw_reset < plan.reset_share:
                self._stats.resets += 1
                raise _RefusalError(_Reply(0, reset=True))
            if draw_5xx < plan.error_5xx_share:
                self._stats.errors_5xx += 1
                raise _RefusalError(
                    _error_reply(500, "InternalServerError", "Internal server error")
                    if draw_5xx < plan.error_5xx_share / 2 else
                    _error_reply(503, "ServiceUnavailable", "The service is currently unavailable"))
        writes = self._writes(operation, request, headers)
        if plan.reject_duplicate_keys and operation == "BatchWriteItem":
            self._reject_duplicates(writes, headers)
        if draw_throttle < plan.throttle_share or plan.storm_covers(index):
            self._throttle(plan.throttle_code, len(writes))
        if operation == "BatchWriteItem":
            return self._batch_write(plan, request, writes, headers)
        return self._single_write(plan, request, writes[0], body, headers)

    def _throttle(self, code: str, items: int) -> NoReturn:
        with self._lock:
            self._stats.items_throttled += items
        raise _RefusalError(_error_reply(400, code, _THROTTLE_MESSAGES[code]))

    def _writes(self, operation: str, request: Mapping[str, Any],
                headers: Mapping[str, str]) -> list[_Write]:
        if operation == "BatchWriteItem":
            pairs = [(table, entry) for table, entries in request.get("RequestItems", {}).items()
                     for entry in entries]
        else:
            pairs = [(request.get("TableName", ""), dict(request))]
        writes = []
        for table, entry in pairs:
            item = _written_attributes(operation, entry)
            schema = self._key_schema(table, headers)
            partition = None
            if schema is not None:
                missing = [n for n in schema.names
                           if n not in item and operation in ("BatchWriteItem", "PutItem")]
                if missing:
                    raise _RefusalError(_error_reply(
                        400, "ValidationException", "One or more parameter values were invalid: "
                        f"Missing the key {missing[0]} in the item"))
                if schema.partition.name in item:
                    partition = _attribute_identity(item[schema.partition.name])
            writes.append(_Write(table, entry, _item_wcu(item), partition))
        return writes

    def _reject_duplicates(self, writes: Sequence[_Write], headers: Mapping[str, str]) -> None:
        seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for write in writes:
            schema = self._key_schema(write.table, headers)
            if schema is None:
                continue
            attrs = _written_attributes("BatchWriteItem", write.request)
            key = (write.table, tuple(_attribute_identity(attrs[n]) for n in schema.names
                                      if n in attrs))
            if key in seen:
                with self._lock:
                    self._stats.duplicate_key_rejections += 1
                raise _RefusalError(_error_reply(400, "ValidationException",
                                            "Provided list of item keys contains duplicates"))
            seen.add(key)

    def _admit(self, plan: FaultPlan, writes: Sequence[_Write]) -> tuple[list[_Write],
                                                                          list[_Write], int, float]:
        """Split writes into (accepted, unprocessed, refused for capacity) and take the WCU;
        the fourth value is the monotonic time the capacity was taken."""
        accepted: list[_Write] = []
        unprocessed: list[_Write] = []
        refused = 0
        with self._lock:
            now = time.monotonic()
            table_full = False
            for write in writes:
                if self._rng.random() < plan.unprocessed_share:
                    unprocessed.append(write)
                    continue
                buckets = [] if table_full else self._buckets_for(plan, write, now)
                if table_full or not all(b.fits(write.wcu) for b in buckets):
                    # The table bucket refusing ends the prefix; a hot partition does not.
                    table_full = table_full or (
                        plan.capacity_wcu_s is not None and not buckets[0].fits(write.wcu))
                    unprocessed.append(write)
                    refused += 1
                    continue
                for bucket in buckets:
                    bucket.tokens -= write.wcu
                accepted.append(write)
            self._prune_partitions(plan, now)
        return accepted, unprocessed, refused, now

    def _buckets_for(self, plan: FaultPlan, write: _Write, now: float) -> list[_TokenBucket]:
        buckets = []
        if plan.capacity_wcu_s is not None:
            bucket = self._table_buckets.get(write.table)
            if bucket is None:
                bucket = self._table_buckets[write.table] = _TokenBucket(
                    plan.capacity_wcu_s, plan.burst_s, now)
            bucket.refill(now)
            buckets.append(bucket)
        if plan.partition_key_wcu_s is not None and write.partition is not None:
            key = (write.table, write.partition)
            bucket = self._partition_buckets.get(key)
            if bucket is None:
                bucket = self._partition_buckets[key] = _TokenBucket(
                    plan.partition_key_wcu_s, plan.burst_s, now)
            bucket.refill(now)
            buckets.append(bucket)
        return buckets

    def _prune_partitions(self, plan: FaultPlan, now: float) -> None:
        if len(self._partition_buckets) <= _PRUNE_PARTITIONS_ABOVE or now - self._last_prune < 1:
            return
        self._last_prune = now
        self._partition_buckets = {k: b for k, b in self._partition_buckets.items()
                                   if now - b.updated < plan.burst_s}

    def _account(self, accepted: Sequence[_Write], unprocessed: int, admitted_at: float) -> None:
        wcu = float(sum(w.wcu for w in accepted))
        with self._lock:
            self._stats.items_accepted += len(accepted)
            self._stats.items_unprocessed += unprocessed
            self._stats.wcu_accepted += wcu
            # The second the capacity was taken, not the one the upstream answered in: a slow
            # upstream (a busy machine) would otherwise pile two seconds' writes into one.
            second = int(admitted_at - self._started_at)
            by_second = self._stats.wcu_by_second
            by_second[second] = by_second.get(second, 0.0) + wcu

    def _batch_write(self, plan: FaultPlan, request: dict[str, Any], writes: Sequence[_Write],
                     headers: Mapping[str, str]) -> _Reply:
        accepted, unprocessed, refused, admitted_at = self._admit(plan, writes)
        if not accepted and refused:
            self._throttle("ProvisionedThroughputExceededException", len(writes))
        unprocessed_items: dict[str, list[dict[str, Any]]] = {}
        for write in unprocessed:
            unprocessed_items.setdefault(write.table, []).append(write.request)
        answer: dict[str, Any] = {}
        if accepted and not plan.null_sink:
            forwarded: dict[str, list[dict[str, Any]]] = {}
            for write in accepted:
                forwarded.setdefault(write.table, []).append(write.request)
            upstream = self._forward(json.dumps({**request, "RequestItems": forwarded}).encode(),
                                     headers)
            if upstream.status != 200:
                return upstream
            answer = json.loads(upstream.body)
            for table, entries in answer.get("UnprocessedItems", {}).items():
                unprocessed_items.setdefault(table, []).extend(entries)
        returned_upstream = sum(len(e) for e in answer.get("UnprocessedItems", {}).values())
        self._account(accepted, len(unprocessed) + returned_upstream, admitted_at)
        answer["UnprocessedItems"] = unprocessed_items
        answer.pop("ConsumedCapacity", None)
        if request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            tables = dict.fromkeys(w.table for w in writes)
            answer["ConsumedCapacity"] = [
                _consumed(table, sum(w.wcu for w in accepted if w.table == table),
                          request["ReturnConsumedCapacity"]) for table in tables]
        return _json_reply(200, answer)

    def _single_write(self, plan: FaultPlan, request: Mapping[str, Any], write: _Write,
                      body: bytes, headers: Mapping[str, str]) -> _Reply:
        accepted, _, _, admitted_at = self._admit(
            dataclasses.replace(plan, unprocessed_share=0.0), [write])
        if not accepted:
            self._throttle("ProvisionedThroughputExceededException", 1)
        answer: dict[str, Any] = {}
        if not plan.null_sink:
            upstream = self._forward(body, headers)
            if upstream.status != 200:
                return upstream
            answer = json.loads(upstream.body)
        self._account(accepted, 0, admitted_at)
        answer.pop("ConsumedCapacity", None)
        if request.get("ReturnConsumedCapacity") in ("TOTAL", "INDEXES"):
            answer["ConsumedCapacity"] = _consumed(write.table, write.wcu,
                                                   request["ReturnConsumedCapacity"])
        return _json_reply(200, answer)

    # -- upstream --------------------------------------------------------------------------

    def _forward(self, body: bytes, headers: Mapping[str, str]) -> _Reply:
        if self._upstream is None:
            return _error_reply(500, "InternalServerError",
                                "this DynamoDB double has no upstream endpoint: only writes with "
                                "null_sink=True can be answered; start it with an upstream URL")
        sent = {k: v for k, v in headers.items()
                if k.lower() not in ("host", "content-length", "connection")}
        try:
            return self._upstream.post(body, sent)
        except (OSError, http.client.HTTPException) as err:
            return _error_reply(500, "InternalServerError",
                                f"the double could not reach its upstream {self._upstream.url}: "
                                f"{err}")

    def _key_schema(self, table: str, headers: Mapping[str, str]) -> KeySchema | None:
        """The table's key schema from upstream DescribeTable, cached; None if unknown."""
        schema = self._key_schemas.get(table)
        if schema is not None or self._upstream is None:
            return schema
        from dynamo_ingest.core.keys import key_schema_from_description

        sent = {k: v for k, v in headers.items()
                if k.lower() not in ("host", "content-length", "connection")}
        sent["X-Amz-Target"] = "DynamoDB_20120810.DescribeTable"
        reply = self._forward(json.dumps({"TableName": table}).encode(), sent)
        if reply.status != 200:
            return None  # the write goes upstream, which answers ResourceNotFound like AWS
        schema = key_schema_from_description(json.loads(reply.body)["Table"])
        with self._lock:
            self._key_schemas[table] = schema
        return schema

    def _forget_key_schema(self, body: bytes) -> None:
        try:
            table = json.loads(body).get("TableName")
        except ValueError:
            return
        with self._lock:
            self._key_schemas.pop(table, None)


def _written_attributes(operation: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes a write carries: what its WCU and its key are computed from."""
    if operation == "BatchWriteItem":
        if "PutRequest" in entry:
            return dict(entry["PutRequest"]["Item"])
        return dict(entry["DeleteRequest"]["Key"])
    if operation == "PutItem":
        return dict(entry.get("Item", {}))
    attrs = dict(entry.get("Key", {}))
    # UpdateItem is approximated by its key plus the new values (AWS charges the larger of
    # the item before and after, which only the table knows).
    attrs.update(entry.get("ExpressionAttributeValues", {}))
    for name, update in entry.get("AttributeUpdates", {}).items():
        if "Value" in update:
            attrs[name] = update["Value"]
    return attrs


def _consumed(table: str, wcu: float, mode: str) -> dict[str, Any]:
    consumed: dict[str, Any] = {"TableName": table, "CapacityUnits": float(wcu)}
    if mode == "INDEXES":
        consumed["Table"] = {"CapacityUnits": float(wcu)}
    return consumed


class _Server(ThreadingHTTPServer):
    """The listening server; its handler threads reach the double through it."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed mid-request) is normal here; say nothing."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)

    def __init__(self, address: tuple[str, int], double: DynamoDBDouble) -> None:
        super().__init__(address, _Handler)
        self.double = double


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: DynamoDB on ``POST /``, admin under ``/__double/``."""

    protocol_version = "HTTP/1.1"
    server_version = "Server"
    # Headers and body leave in separate writes: Nagle plus delayed ACKs would stall each by 40 ms.
    disable_nagle_algorithm = True

    @property
    def double(self) -> DynamoDBDouble:
        assert isinstance(self.server, _Server)
        return self.server.double

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests and benchmarks read the stats instead."""

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, reply: _Reply) -> None:
        if reply.reset:
            # SO_LINGER 0: closing sends a TCP RST, like a load balancer dropping the request.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def do_GET(self) -> None:
        self._body()
        if self.path.rstrip("/") == "/__double/stats":
            self._send(_json_reply(200, self.double.stats.to_json()))
        else:
            self._send(_json_reply(404, {"message": f"no admin path {self.path}: GET "
                                                    f"{ADMIN_PREFIX}stats"}))

    def do_POST(self) -> None:
        body = self._body()
        if self.path.startswith(ADMIN_PREFIX):
            self._send(self._admin(self.path[len(ADMIN_PREFIX):].rstrip("/"), body))
            return
        operation = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        try:
            reply = self.double.handle(operation, body, dict(self.headers.items()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            reply = _error_reply(400, "SerializationException",
                                 f"the double could not read this {operation} request: {err!r}")
        self._send(reply)

    def _admin(self, action: str, body: bytes) -> _Reply:
        if action == "plan":
            try:
                self.double.set_plan(FaultPlan.from_json(json.loads(body or b"{}")))
            except (DoubleError, ValueError, TypeError) as err:
                return _json_reply(400, {"message": str(err)})
            return _json_reply(200, dataclasses.asdict(self.double.plan))
        if action == "reset-stats":
            self.double.reset_stats()
            return _json_reply(200, {})
        return _json_reply(404, {"message": f"no admin action {action!r}: POST "
                                            f"{ADMIN_PREFIX}plan or {ADMIN_PREFIX}reset-stats"})


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local_aws.dynamodb_double",
        description="An AWS-like DynamoDB endpoint (capacity, throttling, faults) in front of "
                    "an upstream endpoint such as the moto server.")
    parser.add_argument("--upstream", help="upstream DynamoDB endpoint URL (e.g. moto's)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free)")
    parser.add_argument("--capacity", type=float, help="table write capacity, WCU/s")
    parser.add_argument("--partition-capacity", type=float,
                        help="write capacity per partition-key value, WCU/s (AWS: 1000)")
    parser.add_argument("--burst", type=float, default=1.0, help="seconds of capacity banked")
    parser.add_argument("--null-sink", action="store_true",
                        help="accept writes without forwarding them")
    parser.add_argument("--throttle-share", type=float, default=0.0)
    parser.add_argument("--unprocessed-share", type=float, default=0.0)
    parser.add_argument("--error-5xx-share", type=float, default=0.0)
    parser.add_argument("--reset-share", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added per request")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT, printing the URL first."""
    args = _parser().parse_args(argv)
    if not args.upstream and not args.null_sink:
        _parser().error("--upstream URL is required unless --null-sink is given")
    plan = FaultPlan(
        throttle_share=args.throttle_share, unprocessed_share=args.unprocessed_share,
        error_5xx_share=args.error_5xx_share, reset_share=args.reset_share,
        latency_s=args.latency, capacity_wcu_s=args.capacity,
        partition_key_wcu_s=args.partition_capacity, burst_s=args.burst,
        null_sink=args.null_sink, seed=args.seed)
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    with DynamoDBDouble(args.upstream, plan, port=args.port) as double:
        print(double.url, flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
