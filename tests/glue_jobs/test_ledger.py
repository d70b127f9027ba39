"""The ledger against moto: records, the state machine's conditional writes, checkpoints."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import (
    ALLOWED_TRANSITIONS,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    LedgerTableError,
    SourceObject,
    check_transition,
)
from dynamo_ingest.core.errors import LedgerConflictError

TABLE = "ledger-under-test"
SOURCE = SourceObject("landing", "incoming/données 1.csv", '"0cc175b9c0f1b6a831c399e269772661"')


@pytest.fixture
def ledger(aws: str) -> Ledger:
    table = Ledger(boto3.client("dynamodb"), TABLE)
    table.ensure_table()
    return table


def test_ensure_table_is_idempotent_and_checks_the_key_schema(ledger: Ledger) -> None:
    ledger.ensure_table()
    client = boto3.client("dynamodb")
    assert client.describe_table(TableName=TABLE)["Table"]["BillingModeSummary"][
        "BillingMode"] == "PAY_PER_REQUEST"
    client.create_table(TableName="not-a-ledger", BillingMode="PAY_PER_REQUEST",
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    with pytest.raises(LedgerTableError, match="expected key schema object_id"):
        Ledger(client, "not-a-ledger").ensure_table()


def test_a_missing_table_is_a_named_error_that_says_how_to_create_it(aws: str) -> None:
    with pytest.raises(LedgerTableError, match="dynamo-ingest init"):
        Ledger(boto3.client("dynamodb"), "no-such-table").get(SOURCE)


def test_source_object_identity() -> None:
    assert SOURCE.etag == "0cc175b9c0f1b6a831c399e269772661"
    assert SOURCE.uri == "s3://landing/incoming/données 1.csv"
    assert SourceObject("", "/data/in.csv", "abc").uri == "/data/in.csv"
    assert SourceObject.from_uri("s3://landing/a/b.csv", "e") == SourceObject(
        "landing", "a/b.csv", "e")
    assert SourceObject.from_uri("/data/in.csv", "e") == SourceObject("", "/data/in.csv", "e")


def test_record_round_trips_through_its_item() -> None:
    record = LedgerRecord(
        source=SOURCE, status=LedgerStatus.SUCCEEDED_WITH_REJECTS, version=7, attempts=2,
        job_run_id="jr_2", job_run_ids=("jr_1", "jr_2"), arguments={"--source_path": "s3://x/y"},
        received_at="2024-05-13T09:21:07.412Z", finished_at="2024-05-13T09:40:00.000Z",
        error="boom ☀", file_location="s3://landing/complete/données 1.csv",
        rejects_location="s3://landing/error/données 1.csv.rejects.csv",
        report_job_run_id="jr_2", report_status="SUCCEEDED_WITH_REJECTS", rows_read=10,
        items_written=7, rows_rejected=2, duplicate_rows=1, wcu_consumed=7.5, elapsed_s=1.25)
    assert LedgerRecord.from_item(record.to_item()) == record


def test_receive_then_a_duplicate_receive_conflicts(ledger: Ledger) -> None:
    record = ledger.receive(SOURCE)
    assert (record.status, record.attempts, record.file_location) == (
        LedgerStatus.RECEIVED, 0, SOURCE.uri)
    with pytest.raises(LedgerConflictError, match="found RECEIVED"):
        ledger.receive(SOURCE)
    assert ledger.get(SOURCE) == record


def test_a_new_etag_of_the_same_key_is_a_new_object(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    newer = SourceObject(SOURCE.bucket, SOURCE.key, "ffff")
    assert ledger.receive(newer).status == LedgerStatus.RECEIVED
    assert ledger.find(SOURCE.uri) in (ledger.get(SOURCE), ledger.get(newer))


def test_the_event_driven_lifecycle(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    started = ledger.mark_started(SOURCE, "jr_1", {"--source_path": SOURCE.uri})
    assert (started.status, started.attempts, started.job_run_ids) == (
        LedgerStatus.STARTED, 1, ("jr_1",))
    assert ledger.job_started(SOURCE, "jr_1") == started  # the job confirms: no change
    ledger.record_report(SOURCE, "jr_1", {"status": "SUCCEEDED", "rows_read": 5,
                                          "items_written": 5, "wcu_consumed": 5.0,
                                          "elapsed_s": 0.5})
    done = ledger.finish(SOURCE, "jr_1", succeeded=True)
    assert (done.status, done.items_written, done.finished_at is not None) == (
        LedgerStatus.SUCCEEDED, 5, True)
    moved = ledger.file_moved(SOURCE, "jr_1", "s3://landing/complete/données 1.csv")
    assert moved.file_location == "s3://landing/complete/données 1.csv"
    assert moved.version == done.version + 1


def test_a_report_with_rejected_rows_makes_success_succeeded_with_rejects(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    ledger.mark_started(SOURCE, "jr_1", {})
    ledger.record_report(SOURCE, "jr_1", {
        "status": "SUCCEEDED_WITH_REJECTS", "rows_read": 4, "items_written": 3,
        "rows_rejected": 1, "rejects_path": "s3://landing/error/x.rejects.csv"})
    done = ledger.finish(SOURCE, "jr_1", succeeded=True)
    assert done.status == LedgerStatus.SUCCEEDED_WITH_REJECTS
    assert done.rejects_location == "s3://landing/error/x.rejects.csv"


def test_the_job_records_a_manual_run_and_a_rerun_after_a_kill(ledger: Ledger) -> None:
    local = SourceObject("", "/data/orders.csv", "md5abc")
    first = ledger.job_started(local, "local-1")
    assert (first.status, first.attempts, first.object_id) == (
        LedgerStatus.STARTED, 1, "/data/orders.csv")
    again = ledger.job_started(local, "local-2")  # the first run was killed
    assert (again.attempts, again.job_run_ids) == (2, ("local-1", "local-2"))
    with pytest.raises(LedgerConflictError, match="run local-1 to be the current run"):
        ledger.record_report(local, "local-1", {"rows_read": 1})


def test_the_trigger_records_its_run_even_after_the_job_confirmed_it(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    confirmed = ledger.job_started(SOURCE, "jr_1")  # the job ran before mark_started
    assert ledger.mark_started(SOURCE, "jr_1", {"--a": "1"}) == confirmed
    assert ledger.get(SOURCE).attempts == 1  # type: ignore[union-attr]


def test_reclaim_lets_only_a_first_run_that_could_not_start_through(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    with pytest.raises(LedgerConflictError):
        ledger.reclaim(SOURCE)  # RECEIVED: another delivery is starting it
    ledger.mark_not_started(SOURCE, "ConcurrentRunsExceededException", concurrency_limited=True)
    assert ledger.get(SOURCE).status == LedgerStatus.CONCURRENCY_LIMITED  # type: ignore[union-attr]
    assert ledger.reclaim(SOURCE).status == LedgerStatus.RECEIVED
    with pytest.raises(LedgerConflictError):
        ledger.reclaim(SOURCE)


def test_callback_transitions_need_the_current_run(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    ledger.mark_started(SOURCE, "jr_1", {})
    with pytest.raises(LedgerConflictError, match="run jr_0 STARTED"):
        ledger.finish(SOURCE, "jr_0", succeeded=True)
    retrying = ledger.mark_retrying(SOURCE, "jr_1", "FAILED: boom")
    assert (retrying.status, retrying.error) == (LedgerStatus.RETRYING, "FAILED: boom")
    with pytest.raises(LedgerConflictError):
        ledger.mark_retrying(SOURCE, "jr_1", "FAILED: boom")  # a second callback
    with pytest.raises(LedgerConflictError):
        ledger.finish(SOURCE, "jr_1", succeeded=False, error="FAILED: boom")
    second = ledger.mark_started(SOURCE, "jr_2", {})
    assert (second.status, second.attempts) == (LedgerStatus.STARTED, 2)
    failed = ledger.finish(SOURCE, "jr_2", succeeded=False, error="FAILED again")
    assert (failed.status, failed.error) == (LedgerStatus.FAILED, "FAILED again")
    # a manual retry (the job's own registration) may restart a FAILED file
    assert ledger.job_started(SOURCE, "jr_3").attempts == 3


def test_the_transition_table_is_the_rule() -> None:
    assert set(ALLOWED_TRANSITIONS) == {None, *LedgerStatus}
    with pytest.raises(LedgerConflictError, match="RECEIVED cannot become SUCCEEDED"):
        check_transition(LedgerStatus.RECEIVED, LedgerStatus.SUCCEEDED)
    with pytest.raises(LedgerConflictError):
        check_transition(None, LedgerStatus.FAILED)
    check_transition(LedgerStatus.FAILED, LedgerStatus.STARTED)
    check_transition(LedgerStatus.STARTED, LedgerStatus.STARTED)


class InterleavingClient:
    """The real client, except that a competitor's write lands between this actor's read
    and its conditional write, exactly once (the race, made deterministic)."""

    def __init__(self, client: Any, competitor: Callable[[], object]) -> None:
        self._client = client
        self._competitor: Callable[[], object] | None = competitor

    def put_item(self, **kwargs: Any) -> Any:
        if self._competitor is not None:
            competitor, self._competitor = self._competitor, None
            competitor()
        return self._client.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_stale_write_loses_to_the_competing_one(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    ledger.mark_started(SOURCE, "jr_1", {})
    racer = Ledger(InterleavingClient(boto3.client("dynamodb"),
                                      lambda: ledger.mark_retrying(SOURCE, "jr_1", "first")),
                   TABLE)
    with pytest.raises(LedgerConflictError, match="found RETRYING"):
        racer.mark_retrying(SOURCE, "jr_1", "second")
    assert ledger.get(SOURCE).error == "first"  # type: ignore[union-attr]


def test_two_actors_racing_for_the_same_transition_one_wins(ledger: Ledger) -> None:
    ledger.receive(SOURCE)
    ledger.mark_started(SOURCE, "jr_1", {})
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def actor(name: str) -> None:
        mine = Ledger(boto3.client("dynamodb"), TABLE)
        barrier.wait()
        try:
            mine.finish(SOURCE, "jr_1", succeeded=False, error=name)
            outcomes.append("won")
        except LedgerConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=actor, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["conflict", "won"]


def test_recent_and_find(ledger: Ledger) -> None:
    sources = [SourceObject("landing", f"incoming/{i}.csv", f"etag{i}") for i in range(3)]
    for source in sources:
        ledger.receive(source)
    ledger.save_checkpoint(sources[0], 0, 100, {"items_written": 100}, 4)
    ledger.mark_started(sources[0], "jr_0", {})  # updated last
    recent = ledger.recent(limit=2)
    assert [r.source for r in recent] == [sources[0], sources[2]]
    assert len(ledger.recent()) == 3  # checkpoints are not run records
    ledger.finish(sources[0], "jr_0", succeeded=True)
    ledger.file_moved(sources[0], "jr_0", "s3://landing/complete/0.csv")
    assert ledger.find("s3://landing/complete/0.csv").source == sources[0]  # type: ignore[union-attr]
    assert ledger.find("s3://landing/incoming/1.csv").source == sources[1]  # type: ignore[union-attr]
    assert ledger.find("s3://landing/incoming/nope.csv") is None


def test_checkpoints_move_forward_per_partition_and_clear(ledger: Ledger) -> None:
    other_etag = SourceObject(SOURCE.bucket, SOURCE.key, "other")
    ledger.save_checkpoint(SOURCE, 0, 50, {"items_written": 50, "wcu_consumed": 50.5}, 2)
    ledger.save_checkpoint(SOURCE, 0, 100, {"items_written": 100, "wcu_consumed": 101.0}, 2)
    ledger.save_checkpoint(SOURCE, 1, 30, {"items_written": 30}, 2)
    ledger.save_checkpoint(other_etag, 0, 7, {"items_written": 7}, 2)
    with pytest.raises(LedgerConflictError, match="already past row 60"):
        ledger.save_checkpoint(SOURCE, 0, 60, {"items_written": 60}, 2)
    checkpoints = ledger.load_checkpoints(SOURCE)
    assert {p: c.position for p, c in checkpoints.items()} == {0: 100, 1: 30}
    assert checkpoints[0].counts == {"items_written": 100, "wcu_consumed": 101}
    assert checkpoints[0].partitions == 2
    ledger.clear_checkpoints(SOURCE)
    assert ledger.load_checkpoints(SOURCE) == {}
    assert list(ledger.load_checkpoints(other_etag)) == [0]
