"""A write-budget lease that cannot be read or renewed, again and again: said once when it
starts failing (no traceback) and once when it ends, not on every attempt."""

from __future__ import annotations

import logging

import boto3
import pytest
from dynamo_ingest.control.budget import BudgetLease, BudgetShare
from dynamo_ingest.control.ledger import Ledger
from dynamo_ingest.core.aws import AwsConfig

TABLE = "orders"
ATTEMPTS = 20


def _budget_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "dynamo_ingest.control.budget"]


def test_a_share_reader_that_keeps_failing_says_so_once(
        aws: str, caplog: pytest.LogCaptureFixture) -> None:
    # A ledger table that does not exist fails every read, as a lost endpoint does.
    reader = BudgetShare("no-such-ledger", TABLE, "run-a", 0.5, 75.0).reader(
        AwsConfig.from_environ())

    with caplog.at_level(logging.INFO):
        shares = [reader() for _ in range(ATTEMPTS)]

    assert shares == [75.0] * ATTEMPTS  # the writes go on at the last grant
    [line] = _budget_lines(caplog)
    assert "reading the write-budget lease of orders failed" in line.getMessage()
    assert line.exc_info is None


def test_a_load_missing_from_the_lease_is_said_once(
        aws: str, caplog: pytest.LogCaptureFixture) -> None:
    Ledger(boto3.client("dynamodb"), "ledger").ensure_table()
    reader = BudgetShare("ledger", TABLE, "run-a", 0.5, 75.0).reader(AwsConfig.from_environ())

    with caplog.at_level(logging.INFO):
        shares = [reader() for _ in range(ATTEMPTS)]

    assert shares == [75.0] * ATTEMPTS
    [line] = _budget_lines(caplog)
    assert "is not in the write-budget lease" in line.getMessage()


def test_a_lease_renewal_streak_is_said_when_it_starts_and_when_it_ends(
        aws: str, caplog: pytest.LogCaptureFixture) -> None:
    lease = BudgetLease(Ledger(boto3.client("dynamodb"), "no-such-ledger"), TABLE, "run-a",
                        100.0)
    # The renewal loop, driven by count: its stop event is already set after ATTEMPTS waits.
    waits = iter([False] * ATTEMPTS + [True])
    lease._stop.wait = lambda _timeout=None: next(waits)  # type: ignore[method-assign]

    with caplog.at_level(logging.INFO):
        lease._loop()

    first, last = _budget_lines(caplog)
    assert "renewing the write-budget lease of orders failed" in first.getMessage()
    assert first.exc_info is None
    assert f"still failing when the load stopped trying ({ATTEMPTS} failed" in last.getMessage()
