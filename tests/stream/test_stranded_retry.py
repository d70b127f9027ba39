"""A retry or continuation claimed (RETRYING) by a callback or a loader that dies before
starting it is put back in the queue by the sweep once the claim is provably dead, and
started again through the one routing rule: never stranded, never started twice.

The kill is driven explicitly: the claimant's Glue or Lambda client raises :class:`_Killed`
(nothing catches it, as nothing runs after a killed process) at the call that would start
the next run. The sweep's clock is passed in, so no test waits for the claim to expire.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from dynamo_ingest.control.ledger import Lease, LedgerRecord, LedgerStatus, SourceObject
from dynamo_ingest.control.load_request import LoadRequest
from dynamo_ingest.control.queue import CLAIM_S, TableQueue
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.report import RunReport
from dynamo_ingest.load import run_load

import loader_lambda.service as loader
from callback_lambda.events import GlueJobStateChange
from callback_lambda.service import Clients, handle_state_change
from local_aws.orchestration import (
    LOADER_FUNCTION,
    LocalLambdaContext,
    glue_state_change_event,
    job_argv,
    s3_put_event,
)
from local_aws.stream_flow import StreamFlow, Upload
from tests.stream.support import (
    BUCKET,
    JOB,
    TABLE,
    StreamDeployment,
    applied_in_order,
    at_once,
    deploy,
    one_core,
    write_files,
)
from trigger_lambda.service import SweepResult, handle_event, sweep

ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{LOADER_FUNCTION}"


class _Killed(BaseException):
    """The claimant's process ends here (a Lambda killed, or out of time)."""


class _DiesAt:
    """A boto3 client whose ``method`` kills the caller: before the real call, or just after
    it (``after=True``: the next run did start)."""

    def __init__(self, client: Any, method: str, *, after: bool = False) -> None:
        self._client = client
        self._method = method
        self._after = after

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def dying(**kwargs: Any) -> Any:
            if self._after:
                real(**kwargs)
            raise _Killed(f"killed at {name}")
        return dying


@dataclass
class _Stranded:
    """One file whose next run was claimed (RETRYING) by a claimant that then died."""

    deployment: StreamDeployment
    flow: StreamFlow
    path: Path
    source: SourceObject
    lambda_: Any
    claimed_after: float = 0.0  # the clock before the claimant claimed the next run

    def record(self) -> LedgerRecord:
        record = self.deployment.ledger.get(self.source)
        assert record is not None
        return record

    def sweep(self, now: float) -> SweepResult:
        return sweep(self.deployment.trigger, ledger=self.deployment.ledger,
                     glue=self.flow.glue, sns=None, s3=self.deployment.s3, now=now,
                     lambda_=self.lambda_)

    def inside_bound(self) -> float:
        """A clock the claim has not expired at, however slowly it was written: it was made
        after ``claimed_after``."""
        return self.claimed_after + CLAIM_S - 1

    @staticmethod
    def past_bound() -> float:
        """A clock every claim made until now has expired at."""
        return time.time() + CLAIM_S + 1

    def glue_runs(self) -> list[str]:
        runs = self.deployment.glue.get_job_runs(JobName=JOB)["JobRuns"]
        return [r["Id"] for r in runs
                if r.get("Arguments", {}).get("--source_path") == self.source.uri]

    def settle(self) -> LedgerRecord:
        """Let AWS's part of the flow carry the file to its end."""
        [final] = self.flow.settle([Upload(self.path, self.source, {})])
        return final

    def assert_loaded_once_to_complete(self) -> None:
        record = self.record()
        assert record.status == LedgerStatus.SUCCEEDED
        assert self.deployment.table() == applied_in_order([self.path])
        assert self.deployment.incoming() == []
        listed = self.deployment.s3.list_objects_v2(Bucket=BUCKET, Prefix="complete/")
        assert [o["Key"] for o in listed.get("Contents", [])] == [f"complete/{self.path.name}"]
        assert record.file_location == f"s3://{BUCKET}/complete/{self.path.name}"


def _upload(deployment: StreamDeployment, flow: StreamFlow, path: Path,
            lambda_: Any) -> SourceObject:
    """Upload ``path`` and deliver its S3 event: the dispatcher starts its first run."""
    key = f"incoming/{path.name}"
    body = path.read_bytes()
    etag = str(deployment.s3.put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"])
    source = SourceObject(BUCKET, key, etag)
    result = handle_event(s3_put_event(BUCKET, key, source.etag, len(body)), deployment.trigger,
                          ledger=deployment.ledger, glue=flow.glue, sns=None, s3=deployment.s3,
                          lambda_=lambda_)
    assert [o.outcome for o in result.outcomes] == ["started"]
    return source


@pytest.fixture
def small_files(tmp_path: Path) -> list[Path]:
    return write_files(tmp_path, 1, rows=30)


@pytest.fixture
def stranded_glue_retry(aws: str, small_files: list[Path]) -> Iterator[_Stranded]:
    """A Glue run failed; the callback claimed its retry and died calling StartJobRun."""
    deployment = deploy(max_concurrent_runs=2)
    with deployment.flow() as flow:
        [path] = small_files
        source = _upload(deployment, flow, path, None)
        stranded = _Stranded(deployment, flow, path, source, None)
        _glue_run_fails(stranded, _DiesAt(flow.glue, "start_job_run"))
        yield stranded


def _glue_run_fails(stranded: _Stranded, glue: Any) -> None:
    """The file's Glue run ends FAILED before writing (Glue lost its workers, say); the
    callback handles the state change with ``glue`` and is killed in it."""
    run_id = stranded.record().job_run_id
    assert run_id is not None
    stranded.claimed_after = time.time()
    stranded.flow.glue.ended(run_id)
    change = GlueJobStateChange.from_event(glue_state_change_event(
        JOB, run_id, "FAILED", "Glue lost the run's workers"))
    with pytest.raises(_Killed):
        handle_state_change(change, stranded.deployment.callback,
                            ledger=stranded.deployment.ledger,
                            clients=Clients(glue=glue, s3=stranded.deployment.s3, sns=None))


def test_a_glue_retry_whose_callback_died_is_started_again_by_the_sweep(
        stranded_glue_retry: _Stranded) -> None:
    stranded = stranded_glue_retry
    claimed = stranded.record()
    assert claimed.status == LedgerStatus.RETRYING
    assert claimed.attempts == 1

    result = stranded.sweep(stranded.past_bound())

    assert result.released_claims == 1
    restarted = stranded.record()
    assert restarted.status == LedgerStatus.STARTED
    assert restarted.attempts == 2  # the retry counts against MAX_ATTEMPTS as the callback's would
    assert len(stranded.glue_runs()) == 2
    assert "--restart" not in restarted.arguments  # a retry resumes from the checkpoints
    final = stranded.settle()
    assert (final.attempts, len(final.job_run_ids)) == (2, 2)
    stranded.assert_loaded_once_to_complete()


def test_a_fresh_retry_claim_is_left_to_its_callback(stranded_glue_retry: _Stranded) -> None:
    stranded = stranded_glue_retry
    claim = stranded.record().claim
    assert claim is not None  # the callback's, bounded like a dispatcher's
    assert claim.run_id.startswith("retry-")
    assert claim.expires_at >= stranded.claimed_after + CLAIM_S
    # Inside the bound the callback may still be starting the retry.
    result = stranded.sweep(stranded.inside_bound())

    assert result.released_claims == 0
    assert stranded.record().status == LedgerStatus.RETRYING
    assert stranded.record().claim == claim
    assert len(stranded.glue_runs()) == 1


def test_two_sweeps_at_once_start_a_stranded_retry_once(stranded_glue_retry: _Stranded) -> None:
    stranded = stranded_glue_retry
    later = stranded.past_bound()

    results: list[SweepResult] = at_once(2, lambda _: stranded.sweep(later))

    assert sum(r.released_claims for r in results) == 1
    started = [f for r in results for f, _ in r.dispatch["started"]]  # type: ignore[attr-defined]
    assert started == [stranded.source.uri]
    assert len(stranded.glue_runs()) == 2
    stranded.settle()
    stranded.assert_loaded_once_to_complete()


def test_a_sweep_that_read_the_dead_claim_late_leaves_the_next_claim_alone(
        stranded_glue_retry: _Stranded) -> None:
    # Sweep A puts the file back and its dispatcher claims it; sweep B read the queue before
    # that, while the dead claim was there: B must not take the file from A's dispatcher.
    stranded = stranded_glue_retry
    queue = TableQueue(stranded.deployment.ledger, TABLE)
    read_by_b = queue.snapshot()
    assert queue.release_dead_claims(queue.snapshot(), stranded.past_bound()) == 1  # sweep A
    fresh = Lease.for_this_process("dispatch-a", duration_s=CLAIM_S)
    queue.claim(queue.snapshot(), queue.snapshot().waiting[0], fresh)

    assert queue.release_dead_claims(read_by_b, stranded.past_bound()) == 0  # sweep B
    record = stranded.record()
    assert (record.status, record.claim) == (LedgerStatus.RECEIVED, fresh)


def test_a_retry_that_did_start_is_not_touched_by_the_sweep(aws: str,
                                                            small_files: list[Path]) -> None:
    deployment = deploy(max_concurrent_runs=2)
    with deployment.flow() as flow:
        [path] = small_files
        stranded = _Stranded(deployment, flow, path, _upload(deployment, flow, path, None),
                             None)
        # The callback dies just after StartJobRun answered: the retry is going.
        _glue_run_fails(stranded, _DiesAt(flow.glue, "start_job_run", after=True))
        expired = stranded.past_bound()
        [going] = flow.glue.going()
        defaults = deployment.glue.get_job(JobName=JOB)["Job"]["DefaultArguments"]
        assert flow.run_job(job_argv(JOB, going.run_id, {**defaults, **going.arguments})) == 0
        # The job registered its run (RETRYING → STARTED): the claim on its start is over.
        assert (stranded.record().status, stranded.record().job_run_id) == (
            LedgerStatus.STARTED, going.run_id)
        assert stranded.record().claim is None

        assert stranded.sweep(expired).released_claims == 0
        assert len(stranded.glue_runs()) == 2


def _deadline_run(args: JobArguments, job_run_id: str, interrupt: Any) -> RunReport:
    return run_load(args, job_run_id=job_run_id, interrupt=interrupt)


def test_a_loader_continuation_whose_invocation_died_is_started_again(
        aws: str, small_files: list[Path]) -> None:
    deployment = deploy(max_concurrent_runs=2, small_file_bytes=1024 * 1024)
    with one_core(), deployment.flow() as flow:
        lambda_ = boto3.client("lambda", endpoint_url=flow.invocations.url)
        [path] = small_files
        source = _upload(deployment, flow, path, lambda_)
        stranded = _Stranded(deployment, flow, path, source, lambda_)
        invocation = flow.invocations.take()
        assert invocation is not None
        request = LoadRequest.from_event(invocation.payload)
        # Its deadline is inside the margin from the start: the load stops before writing and
        # is handed on; the invocation dies calling lambda:Invoke for the continuation.
        context = LocalLambdaContext(LOADER_FUNCTION, "req-1", ARN, timeout_s=1.0)
        clients = loader.Clients(s3=deployment.s3, sns=boto3.client("sns"),
                                 lambda_=_DiesAt(lambda_, "invoke"))
        stranded.claimed_after = time.time()
        with pytest.raises(_Killed):
            loader.handle_load(request, deployment.loader, ledger=deployment.ledger,
                               clients=clients, context=context,  # type: ignore[arg-type]
                               run_load=_deadline_run)
        assert stranded.record().status == LedgerStatus.RETRYING
        assert flow.invocations.pending() == 0
        assert stranded.sweep(stranded.inside_bound()).released_claims == 0
        assert stranded.record().status == LedgerStatus.RETRYING

        result = stranded.sweep(stranded.past_bound())

        assert result.released_claims == 1
        assert flow.invocations.pending(LOADER_FUNCTION) == 1  # routed to the loader again
        assert stranded.glue_runs() == []
        final = stranded.settle()
        assert final.engine == "local"
        stranded.assert_loaded_once_to_complete()
