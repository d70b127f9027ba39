"""Many files through the local event flow, delivered the way AWS would deliver them.

:class:`StreamFlow` uploads files to ``incoming/`` one right after another and then plays
AWS's part until every file is settled: S3 notifications at least once, some twice, out of
order (:class:`local_aws.s3_events.EventFeed`) to the trigger; Glue's ``MaxConcurrentRuns``
(:class:`local_aws.glue_runs.ConcurrentGlue`); the runs the dispatcher started, executed
through the injected ``run_job``; their "Glue Job State Change" to the callback; the
callback's dispatch requests to the dispatcher; and the scheduled sweep. Which of the due
deliveries comes next is drawn from a seeded generator, so a seed repeats a run exactly.

The handlers' service functions are called with the clients injected (the Glue client is the
concurrency-enforcing one), the way the handlers call them.

Its state is AWS's: the ledger, the bucket and the job's runs, so a flow killed midway and
started again with the same files carries on where the first stopped (uploads already there
are not repeated; their pending events are still owed, as S3 would still owe them).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from dynamo_ingest.control.ledger import (
    TERMINAL_STATUSES,
    Ledger,
    LedgerRecord,
    LedgerStatus,
    SourceObject,
)
from dynamo_ingest.control.queue import TableQueue, event_time_text
from dynamo_ingest.core.errors import DynamoIngestError

from callback_lambda.events import GlueJobStateChange
from callback_lambda.service import Clients, handle_state_change
from callback_lambda.settings import Settings as CallbackSettings
from local_aws.glue_runs import ConcurrentGlue, GoingRun
from local_aws.moto_server import LOCAL_REGION
from local_aws.orchestration import glue_state_change_event, job_argv, s3_put_event
from local_aws.s3_events import EVENT_TIME_METADATA, SEQUENCER_METADATA, DeliveryPlan, EventFeed
from trigger_lambda.dispatching import dispatch_table
from trigger_lambda.service import handle_event, sweep
from trigger_lambda.settings import Settings as TriggerSettings

LOG = logging.getLogger(__name__)
RunJob = Callable[[list[str]], int]
LAMBDA_ASYNC_RETRIES = 2  # Terraform's async_max_retry_attempts


class StreamFlowError(DynamoIngestError):
    """The local flow cannot settle its files (the message says which and where they are)."""


@dataclass(frozen=True)
class Upload:
    """One file as uploaded: its object and the notification S3 owes for it."""

    path: Path
    source: SourceObject
    event: Mapping[str, Any]


@dataclass
class FlowCounters:
    """What the flow delivered, for the caller's summary and the tests."""

    events_delivered: int = 0
    events_duplicated: int = 0
    events_dead_lettered: int = 0
    runs_executed: int = 0
    dispatches: int = 0
    sweeps: int = 0
    concurrency_refusals: int = 0
    max_runs_going: int = 0


@dataclass
class StreamFlow:
    """AWS's part of the event flow for a batch of files, on one machine."""

    s3: Any
    glue: ConcurrentGlue
    sns: Any
    ledger: Ledger
    bucket: str
    trigger_settings: TriggerSettings
    callback_settings: CallbackSettings
    run_job: RunJob
    delivery: DeliveryPlan = field(default_factory=DeliveryPlan)
    sweep_every: int = 7  # steps between scheduled sweeps
    counters: FlowCounters = field(default_factory=FlowCounters)
    _feed: EventFeed = field(init=False)
    _dispatch_requests: list[str] = field(default_factory=list)
    _retries: dict[str, int] = field(default_factory=dict)  # by object key and ETag
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._feed = EventFeed(self.delivery)
        self._rng = random.Random(self.delivery.seed + 1)

    # --- uploads --------------------------------------------------------------------

    def upload(self, paths: Sequence[Path], prefix: str | None = None) -> list[Upload]:
        """Upload ``paths`` in the order given (their upload order) under the incoming
        prefix, one right after another; a file the bucket or the ledger already holds (a
        flow started again) is not uploaded twice, but its event is still owed."""
        prefix = self.trigger_settings.incoming_prefix if prefix is None else prefix
        uploads: list[Upload] = []
        last: datetime | None = None
        for path in paths:
            key = prefix + path.name
            upload = self._existing(path, key) or self._put(path, key, last)
            uploads.append(upload)
            if upload.event:
                last = datetime.fromisoformat(
                    str(upload.event["Records"][0]["eventTime"]).replace("Z", "+00:00"))
                if self.ledger.get(upload.source) is None:
                    self._feed.add(upload.event)
        self.counters.events_duplicated = self._feed.duplicates
        return uploads

    def _put(self, path: Path, key: str, last: datetime | None) -> Upload:
        # S3 stamps events in milliseconds: files uploaded within one get distinct, ordered
        # times, as the upload order is what the queue must keep.
        moment = datetime.now(UTC)
        if last is not None and moment <= last:
            moment = last + timedelta(milliseconds=1)
        sequencer = f"{time.time_ns():X}"
        body = path.read_bytes()
        answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata={
            EVENT_TIME_METADATA: event_time_text(moment), SEQUENCER_METADATA: sequencer})
        source = SourceObject(self.bucket, key, str(answer["ETag"]))
        return Upload(path, source, s3_put_event(self.bucket, key, source.etag, len(body),
                                                 region=LOCAL_REGION, event_time=moment,
                                                 sequencer=sequencer))

    def _existing(self, path: Path, key: str) -> Upload | None:
        """The upload of an earlier flow of this very file (same content), if its object or
        its record is there."""
        etag = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError:
            record = self.ledger.get(SourceObject(self.bucket, key, etag))
            return None if record is None else Upload(path, record.source, {})
        metadata = head.get("Metadata") or {}
        if EVENT_TIME_METADATA not in metadata or str(head["ETag"]).strip('"') != etag:
            return None
        moment = datetime.fromisoformat(metadata[EVENT_TIME_METADATA].replace("Z", "+00:00"))
        source = SourceObject(self.bucket, key, str(head["ETag"]))
        return Upload(path, source, s3_put_event(
            self.bucket, key, source.etag, int(head["ContentLength"]), region=LOCAL_REGION,
            event_time=moment, sequencer=metadata.get(SEQUENCER_METADATA)))

    # --- delivery -------------------------------------------------------------------

    def adopt_going_runs(self) -> int:
        """Count the runs an earlier (killed) flow had started and not finished as going:
        in AWS they would still be running; here they run again and resume."""
        queue = TableQueue(self.ledger, self.trigger_settings.target_table)
        adopted = 0
        for file in queue.snapshot().files:
            record = file.record
            if record is not None and record.status == LedgerStatus.STARTED and record.job_run_id:
                self.glue.adopt(self.trigger_settings.glue_job_name, record.job_run_id,
                                record.arguments)
                adopted += 1
        return adopted

    def settle(self, uploads: Sequence[Upload], max_steps: int = 10_000) -> list[LedgerRecord]:
        """Deliver until every upload is settled (finished and moved out of incoming/);
        returns their final records in upload order."""
        for step in range(max_steps):
            if self._settled(uploads):
                while self._dispatch_requests:  # AWS delivers them whatever the flow waits for
                    self._dispatch()
                return [self._final(u) for u in uploads]
            if not self._step(step):
                self._sweep()
                if not self._step(step) and not self._settled(uploads):
                    raise StreamFlowError(self._stuck(uploads))
        raise StreamFlowError(f"not settled after {max_steps} deliveries: {self._stuck(uploads)}")

    def _step(self, step: int) -> bool:
        """Deliver one due thing, chosen at random among those due; False when none is."""
        due: list[Callable[[], None]] = []
        if self._feed:
            due.append(self._deliver_event)
        if self.glue.going():
            due.append(self._execute_run)
        if self._dispatch_requests:
            due.append(self._dispatch)
        if not due:
            return False
        if step % self.sweep_every == self.sweep_every - 1:
            self._sweep()
        self._rng.choice(due)()
        self.counters.max_runs_going = max(self.counters.max_runs_going,
                                           len(self.glue.going()))
        self.counters.concurrency_refusals = self.glue.refusals
        return True

    def _deliver_event(self) -> None:
        event = self._feed.next()
        self.counters.events_delivered += 1
        result = handle_event(event, self.trigger_settings, ledger=self.ledger, glue=self.glue,
                              sns=self.sns, s3=self.s3)
        if result.not_started:
            # Lambda retries a failed invocation twice (async_max_retry_attempts), then the
            # event goes to the failed-events queue, where a person finds it.
            obj = event["Records"][0]["s3"]["object"]
            name = f"{obj['key']}#{obj['eTag']}"
            retries = self._retries.get(name, 0)
            if retries < LAMBDA_ASYNC_RETRIES:
                self._retries[name] = retries + 1
                self._feed.add(event)
            else:
                self.counters.events_dead_lettered += 1

    def _dispatch(self) -> None:
        self._dispatch_requests.pop(0)
        self.counters.dispatches += 1
        dispatch_table(self.trigger_settings, ledger=self.ledger, glue=self.glue, sns=self.sns,
                       s3=self.s3, bucket=self.bucket)

    def _sweep(self) -> None:
        self.counters.sweeps += 1
        sweep(self.trigger_settings, ledger=self.ledger, glue=self.glue, sns=self.sns,
              s3=self.s3, bucket=self.bucket)

    def _execute_run(self) -> None:
        run = self._rng.choice(self.glue.going())
        code = self.run_job(self._argv(run))
        self.counters.runs_executed += 1
        self.glue.ended(run.run_id)
        self._finish(run, code)

    def _argv(self, run: GoingRun) -> list[str]:
        defaults = self.glue.get_job(JobName=run.job_name)["Job"].get("DefaultArguments") or {}
        # Like Glue: the job's DefaultArguments, overridden by the run's Arguments.
        return job_argv(run.job_name, run.run_id, {**defaults, **run.arguments})

    def _finish(self, run: GoingRun, code: int) -> None:
        """Deliver the run's state change to the callback, as EventBridge would."""
        record = self.ledger.find(str(run.arguments.get("--source_path", "")))
        if code == 0:
            state, message = "SUCCEEDED", "Job run succeeded"
        else:
            state = "FAILED"
            message = (record.error if record and record.report_job_run_id == run.run_id
                       and record.error else f"the job exited with code {code}")
        change = GlueJobStateChange.from_event(
            glue_state_change_event(run.job_name, run.run_id, state, message))
        clients = Clients(glue=self.glue, s3=self.s3, sns=self.sns,
                          dispatch=self._dispatch_requests.append)
        handle_state_change(change, self.callback_settings, ledger=self.ledger,
                            clients=clients)

    # --- settling -------------------------------------------------------------------

    def _final(self, upload: Upload) -> LedgerRecord:
        record = self.ledger.get(upload.source)
        if record is None:
            raise StreamFlowError(f"{upload.source.uri} has no ledger record")
        return record

    def _settled(self, uploads: Sequence[Upload]) -> bool:
        for upload in uploads:
            record = self.ledger.get(upload.source)
            if (record is None or record.status not in TERMINAL_STATUSES
                    or record.file_location == upload.source.uri):
                return False
        return True

    def _stuck(self, uploads: Sequence[Upload]) -> str:
        states = []
        for upload in uploads:
            record = self.ledger.get(upload.source)
            if record is None or record.status not in TERMINAL_STATUSES:
                states.append(f"{upload.source.uri}: "
                              f"{'no record' if record is None else record.status}"
                              f"{'' if record is None or not record.error else ' ' + record.error}")
        return "; ".join(states) or "every file finished but one is still in incoming/"
