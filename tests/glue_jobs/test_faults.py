"""The job under each fault the AWS-like double injects, one at a time: the table ends exactly as
an independent oracle says, every row is accounted for, and no item is written twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dynamo_ingest.core.report import RunReport

from dynamo_ingest_cli.datagen import (
    attribute_types_for_layout,
    expected_outcome,
    generate_csv,
    schema_for_layout,
)
from local_aws.dynamodb_double import DoubleStats, FaultPlan
from tests.glue_jobs.conftest import (
    CATALOG_TABLE,
    DATABASE,
    TABLE,
    create_table,
    dynamodb_double,
    register_catalog,
    scan_table,
)

pytestmark = pytest.mark.spark

ROWS = 1000
PARTITIONS = 4


def check_throttled(report: RunReport, stats: DoubleStats) -> None:
    assert stats.items_throttled > 0
    assert report.counts.throttled_retries > 0
    assert report.counts.items_bounced == stats.items_throttled


def check_unprocessed(report: RunReport, stats: DoubleStats) -> None:
    assert stats.items_unprocessed > 0
    assert stats.items_throttled == 0
    assert report.counts.items_bounced == stats.items_unprocessed
    assert report.counts.throttled_retries > 0


def check_5xx(report: RunReport, stats: DoubleStats) -> None:
    assert stats.errors_5xx > 0
    # A server error is not throttling: it must not count as a bounce nor slow the pace.
    assert report.counts.items_bounced == report.counts.throttled_retries == 0


def check_resets(report: RunReport, stats: DoubleStats) -> None:
    assert stats.resets > 0
    assert report.counts.items_bounced == 0


def check_latency(report: RunReport, stats: DoubleStats) -> None:
    # Slow answers are still answers: nothing is resent, every request is a batch of up to
    # 25 items (one short batch per partition at most).
    assert stats.write_requests <= stats.items_accepted // 25 + PARTITIONS
    assert report.counts.throttled_retries == 0


def check_capacity(report: RunReport, stats: DoubleStats) -> None:
    bounced = stats.items_unprocessed + stats.items_throttled
    assert bounced > 0, "a 300 WCU/s table under a 3,600 WCU/s budget must push back"
    assert report.counts.items_bounced == bounced


def check_duplicates(report: RunReport, stats: DoubleStats) -> None:
    assert report.counts.duplicate_rows > 0
    # The double refuses a batch holding one key twice, as AWS does: never happened.
    assert stats.duplicate_key_rejections == 0


@dataclass(frozen=True)
class FaultCase:
    """One fault, the file it is tried with and what it must show besides an exact table."""

    plan: dict[str, Any]
    check: Callable[[RunReport, DoubleStats], None]
    keys: tuple[str, ...] = ("orderId",)
    generator: dict[str, Any] = field(default_factory=dict)


CASES = {
    "throttle_share": FaultCase({"throttle_share": 0.15}, check_throttled),
    "throttling_exception": FaultCase(
        {"throttle_share": 0.15, "throttle_code": "ThrottlingException"}, check_throttled),
    "unprocessed_share": FaultCase({"unprocessed_share": 0.2}, check_unprocessed),
    "5xx_share": FaultCase({"error_5xx_share": 0.2}, check_5xx),
    "connection_resets": FaultCase({"reset_share": 0.15}, check_resets),
    "latency": FaultCase({"latency_s": 0.03}, check_latency),
    # The buckets hold 0.05 s of capacity (15 and 12.5 WCU), less than one 25-item batch: every
    # batch is cut short however slowly a busy machine sends, so push back is certain.
    "table_capacity": FaultCase({"capacity_wcu_s": 300.0, "burst_s": 0.05}, check_capacity),
    # Every row of the orders file below 5,000 rows has batchId batch-0001: one hot partition
    # key holding all the sort keys.
    "hot_partition_key": FaultCase({"partition_key_wcu_s": 250.0, "burst_s": 0.05},
                                   check_capacity, keys=("batchId", "orderId")),
    "duplicate_keys": FaultCase({}, check_duplicates, generator={"duplicate_every": 3}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_fault_alone_leaves_the_exact_table(name: str, run_job: Any, aws: str,
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    types = attribute_types_for_layout()
    create_table(TABLE, [(k, types[k], "HASH" if i == 0 else "RANGE")
                         for i, k in enumerate(case.keys)])
    register_catalog(schema_for_layout())
    generated = generate_csv(tmp_path / "orders.csv", ROWS, seed=11,
                             **{"duplicate_every": 41, "bad_every": 150, **case.generator})
    oracle = expected_outcome(generated.path, key_columns=case.keys, column_types=types)
    if len(case.keys) == 2:
        assert len({key[0] for key in oracle.items}) == 1, "the file must have one hot key"

    with dynamodb_double(aws, FaultPlan(**case.plan, seed=5, tables=(TABLE,)),
                         monkeypatch) as double:
        report = run_job(source_path=str(generated.path), catalog_database=DATABASE,
                         catalog_table=CATALOG_TABLE, partitions=PARTITIONS, max_retry_seconds=60)
        stats = double.stats

    assert report.status == "SUCCEEDED_WITH_REJECTS", report.error
    counts = report.counts
    assert counts.identity_holds
    assert (counts.rows_read, counts.rows_rejected, counts.duplicate_rows) == (
        oracle.rows_read, len(oracle.rejected), oracle.duplicate_rows)
    assert scan_table(TABLE) == oracle.items
    # Exactly once: every item DynamoDB accepted was a distinct item the report counts.
    assert stats.items_accepted == counts.items_written == len(oracle.items)
    assert counts.wcu_consumed == stats.wcu_accepted
    case.check(report, stats)
