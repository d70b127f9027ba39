"""`status` shows a running load's engine as its record knows it, never a guess: a Glue run
is not "spark" until its own arguments say so."""

from __future__ import annotations

from dataclasses import replace

from dynamo_ingest.control.ledger import LedgerRecord, LedgerStatus, SourceObject
from dynamo_ingest.control.load_request import LAMBDA_RUN_PREFIX
from dynamo_ingest.control.queue import table_overviews
from rich.console import Console

from dynamo_ingest_cli.flow import outcome_table
from dynamo_ingest_cli.status import (
    GLUE_DEFAULT_ENGINE,
    queue_table,
    record_engine,
    running_engine,
)


def _running(key: str, run_id: str | None, arguments: dict[str, str] | None = None,
             engine: str | None = "spark") -> LedgerRecord:
    """A record as the dispatcher leaves it when it started a run: ``engine`` is the route
    (``spark`` for "a Glue run"), ``arguments`` the run's own Arguments."""
    return LedgerRecord(source=SourceObject("bucket", f"incoming/{key}", "etag"),
                        status=LedgerStatus.STARTED if run_id else LedgerStatus.RECEIVED,
                        attempts=1 if run_id else 0, job_run_id=run_id,
                        job_run_ids=(run_id,) if run_id else (),
                        arguments=arguments or {}, target_table="orders", engine=engine)


def test_a_glue_run_without_its_own_engine_argument_is_not_shown_as_spark() -> None:
    # the job's default arguments (--engine local, say) decide; the record does not know them
    glue_run = _running("a.csv", "jr_1")
    assert running_engine(glue_run) == GLUE_DEFAULT_ENGINE
    assert running_engine(_running("b.csv", "jr_2", {"--engine": "local"})) == "local"
    assert running_engine(_running("c.csv", "jr_3", {"--engine": "auto"})) == "auto"
    loader = _running("d.csv", f"{LAMBDA_RUN_PREFIX}0123", engine="local")
    assert running_engine(loader) == "local"
    # an earlier attempt's report (engine spark) does not speak for the run going now
    assert running_engine(_running("e.csv", "jr_4", {"--engine": "auto"}, engine="spark")) == \
        "auto"
    assert running_engine(_running("f.csv", None)) == "not started yet"

    console = Console(width=300, record=True)
    console.print(queue_table(table_overviews([glue_run]), 0.0))
    rendered = console.export_text()
    assert GLUE_DEFAULT_ENGINE in rendered
    assert "spark" not in rendered


def test_a_records_engine_is_its_runs_report_once_reported_and_never_the_route_before() -> None:
    # The dispatcher records the route ("spark" for any Glue run) when it starts a run; the
    # run's report then names the engine that loaded it. Every view shows one rule.
    started = _running("a.csv", "jr_1", {"--engine": "local"})
    assert record_engine(started) == "local"
    reported = replace(started, status=LedgerStatus.SUCCEEDED, report_job_run_id="jr_1",
                       engine="local", rows_read=5, items_written=3,
                       rows_skipped_by_resume=2)
    assert record_engine(reported) == "local"
    # a new run after a reported one: the earlier report does not speak for it
    rerun = replace(reported, status=LedgerStatus.STARTED, job_run_id="jr_2",
                    arguments={}, engine="spark")
    assert record_engine(rerun) == GLUE_DEFAULT_ENGINE

    console = Console(width=300, record=True)
    console.print(outcome_table([started, reported]))
    rendered = console.export_text()
    assert "spark" not in rendered
    assert "skipped (resumed)" in rendered
    (row,) = [line for line in rendered.splitlines() if "a.csv" in line and "SUCCEEDED" in line]
    assert [c.strip() for c in row.strip("│ ").split("│")][-6:] == ["5", "3", "0", "0", "2",
                                                                      "0"]
