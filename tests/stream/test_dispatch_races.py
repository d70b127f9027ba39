"""The dispatcher against moto's real conditional writes: racing dispatchers, a load ending
while the sweep runs, a duplicate event during a run, a late event, a dead dispatcher."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from dynamo_ingest.control.dispatch import DispatchPolicy, DispatchResult, dispatch
from dynamo_ingest.control.ledger import Lease, Ledger, LedgerRecord, LedgerStatus, SourceObject
from dynamo_ingest.control.queue import TableQueue

from callback_lambda.events import GlueJobStateChange
from callback_lambda.service import CallbackResult, Clients, handle_state_change
from local_aws.glue_runs import ConcurrentGlue
from local_aws.orchestration import glue_state_change_event, s3_put_event
from tests.stream.support import (
    BUCKET,
    JOB,
    LEDGER,
    TABLE,
    StreamDeployment,
    at_once,
    deploy,
)
from trigger_lambda.dispatching import dispatch_table, start_queued
from trigger_lambda.service import SweepResult, handle_event, sweep


def _upload(deployment: StreamDeployment, name: str) -> tuple[SourceObject, dict[str, Any]]:
    key = f"incoming/{name}"
    body = f"orderId,source\n{name},x\n".encode()
    etag = str(deployment.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"])
    source = SourceObject(BUCKET, key, etag)
    return source, s3_put_event(BUCKET, key, source.etag, len(body))


def _runs_of(deployment: StreamDeployment, source: SourceObject) -> list[str]:
    runs = deployment.glue.get_job_runs(JobName=JOB)["JobRuns"]
    return [r["Id"] for r in runs if r.get("Arguments", {}).get("--source_path") == source.uri]


# Generous: only a dispatcher that never reaches the step (a broken test) gets near it.
BOUND_S = 60.0


def _queue_files(deployment: StreamDeployment, count: int) -> list[SourceObject]:
    sources = []
    for i in range(count):
        source, event = _upload(deployment, f"f{i}.csv")
        record = event["Records"][0]
        TableQueue(deployment.ledger, TABLE).enqueue(
            source, f"{record['eventTime']}#{i:032d}#{source.uri}#{source.etag}",
            {"--source_path": source.uri})
        sources.append(source)
    return sources


def _dispatchers(deployment: StreamDeployment, policy: DispatchPolicy,
                 count: int) -> list[DispatchResult]:
    queue = TableQueue(deployment.ledger, TABLE)
    glue = ConcurrentGlue(deployment.glue)
    return at_once(count, lambda _: dispatch(
        queue, lambda record: start_queued(record, deployment.trigger, glue=glue, lambda_=None,
                                    sns=None),
        policy))


def test_racing_dispatchers_start_one_file_once_under_the_serial_policy(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=5)
    first, *others = _queue_files(deployment, 3)
    results = _dispatchers(deployment, DispatchPolicy("serial"), 4)
    started = [f for r in results for f, _ in r.started]
    assert started == [first.uri]  # one of the four, the oldest file, once
    assert len(_runs_of(deployment, first)) == 1
    assert all(_runs_of(deployment, s) == [] for s in others)
    assert [deployment.ledger.get(s).status for s in others] == [  # type: ignore[union-attr]
        LedgerStatus.QUEUED] * 2


def test_racing_dispatchers_never_exceed_the_parallel_policys_slots(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=5)
    sources = _queue_files(deployment, 5)
    results = _dispatchers(deployment, DispatchPolicy("parallel", max_running=2), 4)
    started = sorted(f for r in results for f, _ in r.started)
    assert started == sorted(s.uri for s in sources[:2])  # the two oldest, once each
    assert [len(_runs_of(deployment, s)) for s in sources] == [1, 1, 0, 0, 0]


class _HookedLedger(Ledger):
    """The deployment's ledger, calling ``before_update`` before each conditional update (a
    dispatcher's claim is its first): the test's handle on where a dispatcher is."""

    def __init__(self, before_update: Callable[[], None]) -> None:
        super().__init__(boto3.client("dynamodb"), LEDGER)
        self._before_update = before_update

    def update(self, source: SourceObject, change: Any, also: Any = None) -> LedgerRecord:
        self._before_update()
        return super().update(source, change, also)


def _swept(result: SweepResult) -> list[str]:
    """The files the sweep's dispatcher started."""
    started = result.dispatch["started"]
    assert isinstance(started, list)
    return [str(file) for file, _ in started]


def _wait(event: threading.Event, what: str) -> None:
    if not event.wait(BOUND_S):
        raise AssertionError(f"{what} did not happen within {BOUND_S:.0f} s")


@dataclass
class _EndOfA:
    """a's load has ended in Glue, b waits in the queue: the callback and the sweep are
    ready to run, in whichever order a test drives them."""

    deployment: StreamDeployment
    glue: ConcurrentGlue
    a: SourceObject
    b: SourceObject
    change: GlueJobStateChange

    def sweep(self, ledger: Ledger | None = None) -> SweepResult:
        return sweep(self.deployment.trigger, ledger=ledger or self.deployment.ledger,
                     glue=self.glue, sns=None, s3=self.deployment.s3)

    def callback(self, wake: Callable[[str], None]) -> CallbackResult:
        clients = Clients(glue=self.glue, s3=self.deployment.s3, sns=None, dispatch=wake)
        return handle_state_change(self.change, self.deployment.callback,
                                   ledger=self.deployment.ledger, clients=clients)

    def dispatch(self, ledger: Ledger | None = None) -> DispatchResult:
        return dispatch_table(self.deployment.trigger, ledger=ledger or self.deployment.ledger,
                              glue=self.glue, sns=None, s3=self.deployment.s3)

    def assert_b_started_once(self) -> None:
        ledger = self.deployment.ledger
        assert ledger.get(self.a).status == LedgerStatus.SUCCEEDED  # type: ignore[union-attr]
        assert len(_runs_of(self.deployment, self.b)) == 1
        assert ledger.get(self.b).status == LedgerStatus.STARTED  # type: ignore[union-attr]
        assert self.glue.refusals == 0  # b was started only once a's slot was free
        assert [f.source for f in TableQueue(ledger, TABLE).snapshot().files] == [self.b]


def _end_of_a() -> _EndOfA:
    deployment = deploy(max_concurrent_runs=1)
    (a, a_event), (b, b_event) = _upload(deployment, "a.csv"), _upload(deployment, "b.csv")
    glue = ConcurrentGlue(deployment.glue)
    for event in (a_event, b_event):
        handle_event(event, deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
                     s3=deployment.s3)
    record = deployment.ledger.get(a)
    assert record is not None
    assert record.job_run_id is not None
    assert deployment.ledger.get(b).status == LedgerStatus.QUEUED  # type: ignore[union-attr]
    glue.ended(record.job_run_id)  # a's run is over; Glue sends its state change
    change = GlueJobStateChange.from_event(glue_state_change_event(
        JOB, record.job_run_id, "SUCCEEDED", "Job run succeeded"))
    return _EndOfA(deployment, glue, a, b, change)


def test_a_sweep_before_the_loads_end_leaves_b_to_the_callbacks_dispatcher(aws: str) -> None:
    end = _end_of_a()
    early = end.sweep()  # it reads the queue while a still holds the table's slot
    assert _swept(early) == []
    woken: list[DispatchResult] = []
    end.callback(lambda table: woken.append(end.dispatch()))
    assert [f for f, _ in woken[0].started] == [end.b.uri]
    end.assert_b_started_once()


def test_a_sweep_between_the_loads_end_and_the_wake_starts_b_once(aws: str) -> None:
    end = _end_of_a()
    swept: list[SweepResult] = []
    woken: list[DispatchResult] = []

    def wake(table: str) -> None:  # a is finished; the sweep runs before this dispatcher
        swept.append(end.sweep())
        woken.append(end.dispatch())

    end.callback(wake)
    assert _swept(swept[0]) == [end.b.uri]
    assert woken[0].started == []  # b holds the slot
    end.assert_b_started_once()


def test_a_sweep_claiming_b_with_the_callbacks_dispatcher_starts_b_once(aws: str) -> None:
    # Both dispatchers read the queue after a's end and claim b from the same snapshot: one
    # claim lands, the other's transaction fails its condition and reads the queue again.
    end = _end_of_a()
    together = threading.Barrier(2, timeout=BOUND_S)
    claiming = threading.Event()
    claims = {"callback": 0, "sweep": 0}

    def at_claim(who: str) -> Callable[[], None]:
        def hook() -> None:
            claims[who] += 1
            if claims[who] == 1:  # each one's first update is its claim of b
                claiming.set()
                together.wait()
        return hook

    woken: list[DispatchResult] = []
    callback = threading.Thread(target=lambda: end.callback(
        lambda table: woken.append(end.dispatch(_HookedLedger(at_claim("callback"))))))
    callback.start()
    _wait(claiming, "the callback's dispatcher claiming b")
    swept = end.sweep(_HookedLedger(at_claim("sweep")))
    callback.join()
    started = [f for f, _ in woken[0].started] + _swept(swept)
    assert started == [end.b.uri]
    assert woken[0].lost_races + int(str(swept.dispatch["lost_races"])) == 1
    end.assert_b_started_once()


def test_a_sweep_after_the_callbacks_dispatcher_starts_nothing_more(aws: str) -> None:
    end = _end_of_a()
    woken: list[DispatchResult] = []
    end.callback(lambda table: woken.append(end.dispatch()))
    late = end.sweep()
    assert [f for f, _ in woken[0].started] == [end.b.uri]
    assert _swept(late) == []
    end.assert_b_started_once()


def test_a_duplicate_event_during_a_run_starts_nothing(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=2)
    source, event = _upload(deployment, "a.csv")
    glue = ConcurrentGlue(deployment.glue)
    handle_event(event, deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
                 s3=deployment.s3)
    results = at_once(3, lambda i: handle_event(
        event, deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
        s3=deployment.s3) if i < 2 else dispatch_table(
        deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None, s3=deployment.s3))
    assert [r.outcomes[0].outcome for r in results[:2]] == ["duplicate", "duplicate"]
    assert results[2].started == []
    assert len(_runs_of(deployment, source)) == 1
    assert len(TableQueue(deployment.ledger, TABLE).snapshot().files) == 1


def test_a_later_upload_waits_for_an_earlier_ones_late_event(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=2)
    (_, a_event), (b, b_event) = _upload(deployment, "a.csv"), _upload(deployment, "b.csv")
    glue = ConcurrentGlue(deployment.glue)
    result = handle_event(b_event, deployment.trigger, ledger=deployment.ledger, glue=glue,
                          sns=None, s3=deployment.s3)
    # b's event came first, but a was uploaded before it: b must not overtake a.
    assert [o.outcome for o in result.outcomes] == ["queued"]
    assert _runs_of(deployment, b) == []
    result = handle_event(a_event, deployment.trigger, ledger=deployment.ledger, glue=glue,
                          sns=None, s3=deployment.s3)
    assert [o.outcome for o in result.outcomes] == ["started"]
    assert _runs_of(deployment, b) == []


def test_the_sweep_queues_a_lost_event_and_frees_a_dead_dispatchers_claim(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=2)
    (a, _), (b, _) = _upload(deployment, "a.csv"), _upload(deployment, "b.csv")
    glue = ConcurrentGlue(deployment.glue)
    queue = TableQueue(deployment.ledger, TABLE)
    # a: a dispatcher claimed it and died before starting it (its process is gone)
    queue.enqueue(a, "2020-01-01T00:00:00.000Z#0#a", {"--source_path": a.uri})
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead = Lease("dispatch-dead", Lease.for_this_process("x").host, int(gone.stdout),
                 time.time() + 900, time.time())
    queue.claim(queue.snapshot(), queue.snapshot().waiting[0], dead)
    # b: its S3 event never came
    first = sweep(deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
                  s3=deployment.s3)
    assert first.released_claims == 1
    assert first.queued_without_event == []  # b's event may still be on its way
    later = sweep(deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
                  s3=deployment.s3, now=time.time() + deployment.trigger.sweep_grace_s + 1)
    assert later.queued_without_event == [b.uri]
    assert len(_runs_of(deployment, a)) == 1
    assert deployment.ledger.get(b).status == LedgerStatus.QUEUED  # type: ignore[union-attr]
