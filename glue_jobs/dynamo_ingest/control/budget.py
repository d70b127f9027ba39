"""One write budget per table, shared by every load writing into it (Glue or Lambda), through
a lease in the ledger.

Item ``budget#<table>`` / ``lease`` holds, per running load, the WCU/s it was granted. A load's
driver joins when it starts, re-balances every :data:`RENEW_S` seconds while it runs and
leaves when it ends; its writers re-read its grant every :data:`SHARE_POLL_S` seconds
(:class:`BudgetShare`, the rate limiter's share hook).

Why the grants never add up to more than the budget:

- a load lowers its own grant at once to its fair share (budget ÷ live loads), and takes
  more only out of what no other load holds;
- a lowered grant still counts at its old value for :data:`TRANSIT_S` seconds, the time its
  writers take to read it, so nobody spends what is still in their hands;
- every change is a conditional write on the item's version (two loads re-balancing at once:
  one wins, the other re-reads).

A load whose driver stops renewing (killed) drops out after :data:`LEASE_TTL_S`; a load that
ends leaves at once, so the others grow into its share at their next re-balance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from dynamo_ingest.control.failure_streak import FailureStreak
from dynamo_ingest.control.ledger import Ledger, control_item
from dynamo_ingest.core.aws import AwsConfig
from dynamo_ingest.core.errors import DynamoIngestError

LOG = logging.getLogger(__name__)
BUDGET_PREFIX = "budget#"
LEASE_RECORD = "lease"
# Short periods keep the hand-over quick (a joining load waits about RENEW_S + TRANSIT_S +
# SHARE_POLL_S for its share); each costs one small ledger read or write per period.
RENEW_S = 0.5  # a driver re-balances its grant this often
SHARE_POLL_S = 0.5  # a writer re-reads its load's grant this often
TRANSIT_S = SHARE_POLL_S + 0.5  # until a lowered grant is surely applied by every writer
LEASE_TTL_S = 30.0  # a load that has not renewed for this long is gone
_CONFLICT_RETRIES = 10


class BudgetLeaseError(DynamoIngestError):
    """The table's write-budget lease kept changing under every attempt to update it."""


def budget_id(table: str) -> str:
    """The partition key of ``table``'s budget lease."""
    return f"{BUDGET_PREFIX}{table}"


@dataclass(frozen=True)
class Grant:
    """One load's part of the budget: what it may use now, what it may still be using
    (``in_transit`` until ``lowered_at`` + TRANSIT_S), and until when it is alive."""

    budget: float  # the budget this load was started with
    granted: float
    in_transit: float
    lowered_at: float
    expires_at: float

    def committed(self, now: float) -> float:
        """What this load's writers may be spending now."""
        if now < self.lowered_at + TRANSIT_S:
            return max(self.granted, self.in_transit)
        return self.granted

    @classmethod
    def from_value(cls, value: Mapping[str, Any]) -> Grant:
        """From the lease item's map."""
        return cls(*(float(value[k]) for k in ("budget", "granted", "in_transit",
                                                 "lowered_at", "expires_at")))

    def to_value(self) -> dict[str, Decimal]:
        """For the lease item's map."""
        return {k: Decimal(str(round(getattr(self, k), 3))) for k in
                ("budget", "granted", "in_transit", "lowered_at", "expires_at")}


def rebalance(grants: Mapping[str, Grant], run_id: str, budget: float,
              now: float) -> dict[str, Grant]:
    """The grants after ``run_id`` re-balanced at ``now``: the dead dropped, its own grant
    lowered to its fair share at once, or raised toward it out of what is free."""
    live = {k: g for k, g in grants.items() if g.expires_at > now and k != run_id}
    own = grants.get(run_id)
    # The smallest budget any live load was started with is the table's.
    table_budget = min([budget, *(g.budget for g in live.values())])
    fair = table_budget / (len(live) + 1)
    held = sum(g.committed(now) for g in live.values())
    current = own.granted if own is not None and own.expires_at > now else 0.0
    if current > fair:
        new = replace(own or Grant(budget, 0, 0, 0, 0), granted=fair,
                      in_transit=max(current, own.committed(now) if own else 0.0),
                      lowered_at=now)
    else:
        free = max(0.0, table_budget - held)
        new = Grant(budget, max(current, min(fair, free)),
                    own.in_transit if own else 0.0, own.lowered_at if own else 0.0, 0.0)
    live[run_id] = replace(new, budget=budget, expires_at=now + LEASE_TTL_S)
    return live


class BudgetLease:
    """A load's membership in its table's budget lease (the driver's side)."""

    def __init__(self, ledger: Ledger, table: str, run_id: str, budget_wcu_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._ledger = ledger
        self.table = table
        self.run_id = run_id
        self.budget = budget_wcu_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> tuple[int, dict[str, Grant]]:
        item = self._ledger.get_control_item(budget_id(self.table), LEASE_RECORD)
        if item is None:
            return 0, {}
        return int(item["version"]), {k: Grant.from_value(v)
                                      for k, v in (item.get("holders") or {}).items()}

    def _change(self, change: Callable[[dict[str, Grant], float], dict[str, Grant]]) -> float:
        for _ in range(_CONFLICT_RETRIES):
            version, grants = self._read()
            now = self._clock()
            new = change(grants, now)
            item = control_item({"object_id": budget_id(self.table), "record": LEASE_RECORD,
                                 "kind": "budget", "version": version + 1,
                                 "holders": {k: g.to_value() for k, g in new.items()}})
            condition = ("attribute_not_exists(object_id)" if version == 0
                         else "version = :version")
            values = None if version == 0 else {":version": {"N": str(version)}}
            if self._ledger.put_control_item(item, condition=condition, values=values):
                own = new.get(self.run_id)
                return 0.0 if own is None else own.granted
        raise BudgetLeaseError(f"the write-budget lease of table {self.table!r} kept changing "
                               f"under {_CONFLICT_RETRIES} attempts to update it")

    def renew(self) -> float:
        """Re-balance this load's grant; returns the WCU/s it may use now."""
        return self._change(lambda grants, now: rebalance(grants, self.run_id, self.budget, now))

    def leave(self) -> None:
        """This load ended: its share is free for the others."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self._change(lambda grants, now: {k: g for k, g in grants.items()
                                              if k != self.run_id and g.expires_at > now})
        except DynamoIngestError as err:
            # Its entry expires after LEASE_TTL_S anyway.
            LOG.warning("could not leave the write-budget lease of %s (its share frees "
                        "itself within %.0f s): %s", self.table, LEASE_TTL_S, err)

    def start(self) -> BudgetLease:
        """Join now and keep re-balancing every RENEW_S seconds until :meth:`leave`."""
        granted = self.renew()
        LOG.info("write budget of %s: this load holds %.0f of %.0f WCU/s", self.table,
                 granted, self.budget)
        self._thread = threading.Thread(target=self._loop, name="budget-lease", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        streak = FailureStreak(LOG, f"renewing the write-budget lease of {self.table}")
        while not self._stop.wait(RENEW_S):
            try:
                self.renew()
            except DynamoIngestError as err:
                streak.failed(err, f"this load keeps its grant and retries every {RENEW_S:g} s")
            else:
                streak.succeeded()
        streak.ended()


@dataclass(frozen=True)
class BudgetShare:
    """What a writer needs to read its load's grant (picklable, sent to every task):
    ``fraction`` is this writer's part of its load's grant; ``alone_wcu_s`` what it paces to
    when the lease cannot tell (its part of the whole budget, as before the lease)."""

    ledger_table: str
    table: str
    run_id: str
    fraction: float
    alone_wcu_s: float

    def reader(self, aws: AwsConfig) -> Callable[[], float]:
        """The rate limiter's share hook: this writer's WCU/s now (0 while the load's grant is
        0, e.g. before the others have handed over part of theirs). A failed read keeps the
        last grant, and a load missing from the lease (its driver stopped renewing) paces
        alone: a ledger fault must never stop the writes."""
        return _ShareReader(self, Ledger(aws.client("dynamodb"), self.ledger_table))


class _ShareReader:
    """One writer's reads of its load's grant (see :meth:`BudgetShare.reader`); a fault or
    a missing grant is logged when it starts, not on every read."""

    def __init__(self, share: BudgetShare, ledger: Ledger) -> None:
        self._share = share
        self._ledger = ledger
        self._streak = FailureStreak(LOG, f"reading the write-budget lease of {share.table}")
        self._last = share.alone_wcu_s
        self._missing = False
        self._zero_since: float | None = None
        self._alone_said = False

    def __call__(self) -> float:
        granted = self._read()
        if granted > 0:
            self._zero_since, self._alone_said = None, False
            return granted
        # Another load's share frees within a lease's life at the latest (it renews and
        # lowers, or it is dead and expires): waiting longer would mean a stuck lease.
        now = time.monotonic()
        since = self._zero_since = self._zero_since or now
        if now - since > LEASE_TTL_S + 4 * RENEW_S:
            if not self._alone_said:
                LOG.warning("load %s got no share of %s's budget for %.0f s: pacing alone",
                            self._share.run_id, self._share.table, now - since)
            self._alone_said = True
            return self._share.alone_wcu_s
        return 0.0

    def _read(self) -> float:
        share = self._share
        try:
            item = self._ledger.get_control_item(budget_id(share.table), LEASE_RECORD)
        except DynamoIngestError as err:
            self._streak.failed(err, f"this writer keeps {self._last:.0f} WCU/s")
            return self._last
        self._streak.succeeded()
        grant = ((item or {}).get("holders") or {}).get(share.run_id)
        if grant is None:
            if not self._missing:
                LOG.warning("load %s is not in the write-budget lease of %s: pacing alone",
                            share.run_id, share.table)
            self._missing, self._last = True, share.alone_wcu_s
        else:
            self._missing, self._last = False, float(grant["granted"]) * share.fraction
        return self._last
