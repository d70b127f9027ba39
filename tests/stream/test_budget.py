"""One write budget per table: concurrent loads share it through the ledger's lease."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
from dynamo_ingest.control.budget import (
    LEASE_RECORD,
    TRANSIT_S,
    Grant,
    budget_id,
    rebalance,
)
from dynamo_ingest.control.ledger import Ledger
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.job import run

from local_aws.dynamodb_double import DynamoDBDouble, FaultPlan
from tests.stream.support import one_core

BUDGET = 150.0  # WCU/s: the table's capacity at the double, and each load's --write_rate
ROWS = 500  # 2-WCU items per load: three loads ≈ 20 s at the budget
# Two WCU an item: half the requests per WCU, so a busy machine's client keeps up with the
# budget.
PAD = "x" * 1900
TABLE = "budget_orders"
LEDGER = "budget-ledger"


def _file(path: Path, load: int) -> Path:
    # Distinct keys per load: "never overlapping", what the parallel policy asks for.
    path.write_text("id,n\n" + "".join(f"l{load}-{i:05d},{PAD}\n" for i in range(ROWS)),
                    encoding="utf-8")
    return path


def _all_joined(dynamodb: object, threads: list[threading.Thread],
                double: DynamoDBDouble) -> int | None:
    """The double's second in which all three loads first held a place in the lease (polled,
    bounded by the loads themselves: None once one ended before)."""
    ledger = Ledger(dynamodb, LEDGER)
    while all(t.is_alive() for t in threads):
        item = ledger.get_control_item(budget_id(TABLE), LEASE_RECORD)
        if item and len(item.get("holders") or {}) == 3:
            return double.second_now()
        time.sleep(0.05)
    return None


def test_rebalance_never_grants_more_than_the_budget() -> None:
    grants: dict[str, Grant] = {}
    now = 1000.0

    def step(run_id: str, at: float) -> Grant:
        nonlocal grants
        grants = rebalance(grants, run_id, BUDGET, now + at)
        # what every load's writers may be spending at that moment
        assert sum(g.committed(now + at) for g in grants.values()) <= BUDGET
        return grants[run_id]

    assert step("a", 0.0).granted == BUDGET  # alone: all of it
    assert step("b", 0.1).granted == 0.0  # a still holds it all
    assert step("a", 0.2).granted == BUDGET / 2  # a lowers at once …
    assert step("b", 0.3).granted == 0.0  # … but a's writers may still spend the old grant
    assert step("b", 0.2 + TRANSIT_S).granted == BUDGET / 2
    assert step("c", 0.3 + TRANSIT_S).granted == 0.0
    assert step("a", 0.4 + TRANSIT_S).granted == BUDGET / 3
    assert step("b", 0.5 + TRANSIT_S).granted == BUDGET / 3
    assert step("c", 0.6 + TRANSIT_S).granted == 0.0
    assert step("c", 0.6 + 2 * TRANSIT_S).granted == BUDGET / 3
    # a load that stopped renewing drops out; the survivor grows into its share
    step("b", 60.0)
    assert set(grants) == {"b"}
    assert grants["b"].granted == BUDGET


def test_three_overlapping_loads_share_the_tables_budget(aws: str, tmp_path: Path,
                                                         monkeypatch: object) -> None:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}])
    Ledger(dynamodb, LEDGER).ensure_table()
    files = [_file(tmp_path / f"load-{i}.csv", i) for i in range(3)]
    # DynamoDB keeps up to 300 s of unused capacity as burst; two seconds here is stricter.
    plan = FaultPlan(capacity_wcu_s=BUDGET, burst_s=2.0, null_sink=True, tables=(TABLE,))
    reports: list[RunReport] = []
    marks: dict[str, list[int]] = {"start": [], "end": []}
    joined: int | None = None
    barrier = threading.Barrier(3)
    with DynamoDBDouble(aws, plan) as double:
        mp = monkeypatch
        mp.setenv("AWS_ENDPOINT_URL_DYNAMODB", double.url)  # type: ignore[attr-defined]

        def load(path: Path) -> None:
            barrier.wait()
            marks["start"].append(double.second_now())
            reports.append(run(JobArguments(
                source_path=str(path), target_table=TABLE, write_rate=str(BUDGET),
                engine="local", partitions=2, ledger_table=LEDGER)))
            marks["end"].append(double.second_now())

        with one_core():
            threads = [threading.Thread(target=load, args=(f,)) for f in files]
            for thread in threads:
                thread.start()
            joined = _all_joined(dynamodb, threads, double)
            for thread in threads:
                thread.join()
        stats = double.stats
        mp.delenv("AWS_ENDPOINT_URL_DYNAMODB")  # type: ignore[attr-defined]
    assert [r.status for r in reports] == ["SUCCEEDED"] * 3, [r.error for r in reports]
    assert sum(r.counts.items_written for r in reports) == 3 * ROWS
    assert stats.wcu_accepted == 2 * 3 * ROWS
    bounced = stats.items_unprocessed + stats.items_throttled
    assert bounced <= 0.01 * stats.items_accepted, f"{bounced} of {stats.items_accepted} bounced"
    assert joined is not None, "a load ended before all three had joined the table's lease"
    # While all three load: the whole seconds between the first write after all three
    # joined the table's lease (each joins before reading its file, which takes a busy
    # machine a few seconds) and the last write before the first load ended (equal loads
    # with equal shares end together): the rate at the budget, nearly all of it used.
    written = sorted(s for s in stats.wcu_by_second if joined <= s <= min(marks["end"]))
    overlap = range(written[0] + 1, written[-1])
    seconds = [stats.wcu_by_second.get(s, 0.0) for s in overlap]
    print(f"WCU per second while the three overlap: {seconds}; bounced {bounced} of "
          f"{stats.items_accepted}")
    assert len(seconds) >= 5, seconds
    # The double lends its burst to a second after a slow one, so single seconds vary; over
    # the overlap the loads stay at the budget, and asked no more (nearly nothing bounced).
    assert sum(seconds) / len(seconds) <= BUDGET * 1.05
    assert sum(seconds) / len(seconds) >= 0.9 * BUDGET


def test_a_writer_reads_its_share_and_never_stalls_on_a_missing_lease(aws: str) -> None:
    from dynamo_ingest.control.budget import BudgetLease, BudgetShare
    from dynamo_ingest.core.aws import AwsConfig

    dynamodb = boto3.client("dynamodb")
    ledger = Ledger(dynamodb, LEDGER)
    ledger.ensure_table()
    aws_config = AwsConfig.from_environ()
    share = BudgetShare(LEDGER, TABLE, "run-a", fraction=0.5, alone_wcu_s=75.0).reader(
        aws_config)
    assert share() == 75.0  # not in the lease (its driver is gone): paces alone
    lease = BudgetLease(ledger, TABLE, "run-a", BUDGET)
    assert lease.renew() == BUDGET
    assert share() == BUDGET * 0.5
    # the ledger unreachable: the last grant holds, the writes go on
    missing = BudgetShare("no-such-ledger", TABLE, "run-a", 0.5, 75.0).reader(aws_config)
    assert missing() == 75.0
    lease.leave()
    assert share() == 75.0
