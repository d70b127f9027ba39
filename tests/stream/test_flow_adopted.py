"""A flow started again takes over the Glue run the earlier flow had going: that run counts
towards "at most N Glue runs at once" although it ends in the very step that executes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from dynamo_ingest.control.ledger import LedgerStatus

from tests.stream.support import BUCKET, applied_in_order, deploy, one_core, write_files


class FlowKilled(Exception):  # noqa: N818 (it stands for a SIGKILL, not an error of the code)
    """The earlier flow's process died as it began to execute its Glue run."""


def _killed_at_the_run(argv: list[str]) -> int:
    # A stand-in for SIGKILL at that moment (a real kill could land anywhere, by timing):
    # the run was started and recorded, and nothing of it was executed.
    raise FlowKilled(" ".join(argv))


def test_a_run_adopted_from_a_killed_flow_counts_as_going(aws: str, tmp_path: Path) -> None:
    deployment = deploy(max_concurrent_runs=1)  # no loader function: every file to Glue
    paths = write_files(tmp_path, 1)
    with one_core():
        with deployment.flow(seed=2, duplicate_share=0.0) as first:
            first.run_job = _killed_at_the_run
            with pytest.raises(FlowKilled):
                first.settle(first.upload(paths))
        started = deployment.ledger.recent(limit=10)
        assert [r.status for r in started] == [LedgerStatus.STARTED]

        with deployment.flow(seed=2, duplicate_share=0.0) as second:
            uploads = second.upload(paths)
            assert second.adopt_going_runs() == 1
            [record] = second.settle(uploads)

    # The adopted run was the one executed, and the first step ended it: counted all the same.
    assert second.counters.runs_executed == 1
    assert second.counters.max_runs_going == 1
    assert record.status == LedgerStatus.SUCCEEDED
    assert record.job_run_ids == started[0].job_run_ids
    assert record.file_location == f"s3://{BUCKET}/complete/{paths[0].name}"
    assert deployment.table() == applied_in_order(paths)
