"""`dynamo-ingest status` shows each table's queue: queued, running, done, failed, with ages
and the engine."""

from __future__ import annotations

import io

from dynamo_ingest.control.ledger import LedgerStatus
from rich.console import Console

from dynamo_ingest_cli.status import GLUE_DEFAULT_ENGINE, show_status
from local_aws.glue_runs import ConcurrentGlue
from local_aws.orchestration import s3_put_event
from tests.stream.support import BUCKET, LEDGER, TABLE, deploy
from trigger_lambda.dispatching import dispatch_table
from trigger_lambda.service import handle_event


def test_status_shows_each_tables_queue(aws: str) -> None:
    deployment = deploy(max_concurrent_runs=2)
    glue = ConcurrentGlue(deployment.glue)
    sources = []
    for name in ("a.csv", "b.csv", "c.csv"):
        key = f"incoming/{name}"
        etag = deployment.s3.put_object(Bucket=BUCKET, Key=key, Body=b"orderId\n1\n")["ETag"]
        handle_event(s3_put_event(BUCKET, key, etag, 10), deployment.trigger,
                     ledger=deployment.ledger, glue=glue, sns=None, s3=deployment.s3)
        sources.append(deployment.ledger.find(f"s3://{BUCKET}/{key}"))
    a = sources[0]
    assert a is not None
    assert a.job_run_id is not None
    deployment.ledger.finish(a.source, a.job_run_id, succeeded=False, error="boom")
    glue.ended(a.job_run_id)
    dispatch_table(deployment.trigger, ledger=deployment.ledger, glue=glue, sns=None,
                   s3=deployment.s3)
    assert [deployment.ledger.get(s.source).status for s in sources if s] == [  # type: ignore[union-attr]
        LedgerStatus.FAILED, LedgerStatus.STARTED, LedgerStatus.QUEUED]

    screen = io.StringIO()
    assert show_status(None, LEDGER, 20, Console(file=screen, width=250)) == 0
    text = screen.getvalue()
    assert "queues by target table" in text
    (row,) = [line for line in text.splitlines() if line.startswith(f"│ {TABLE}")]
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[0] == TABLE
    assert cells[1].startswith("1 (oldest ")  # queued: c
    assert cells[2].startswith("1 (oldest ")  # running: b
    # b runs in Glue with no --engine of its own: the job's default decides, not known here.
    assert cells[3] == GLUE_DEFAULT_ENGINE
    assert cells[4] == "0"  # done
    assert cells[5].startswith("1 (oldest ")  # failed: a
    assert cells[7] == f"s3://{BUCKET}/incoming/c.csv"
