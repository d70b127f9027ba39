"""S3 event notifications delivered the way S3 delivers them: at least once, some twice, not
necessarily in upload order.

:class:`EventFeed` holds the notifications of the uploads and hands them out one at a time
in an order drawn from a seeded random generator (so a run can be repeated): each event may
be held back behind later ones and some are delivered a second time.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Metadata the local flow stores on each upload: the event S3 owes for it, so a flow started
# again after a crash still delivers the events it had not delivered (S3 keeps them).
EVENT_TIME_METADATA = "dynamo-ingest-event-time"
SEQUENCER_METADATA = "dynamo-ingest-sequencer"


@dataclass(frozen=True)
class DeliveryPlan:
    """How unreliable delivery is: the share of events delivered twice, and how far (in
    events) one may be held back behind later ones."""

    duplicate_share: float = 0.25
    reorder_window: int = 4
    seed: int = 0


@dataclass
class EventFeed:
    """Pending S3 notifications, handed out at least once each."""

    plan: DeliveryPlan = field(default_factory=DeliveryPlan)
    _pending: list[Mapping[str, Any]] = field(default_factory=list)
    _rng: random.Random = field(init=False)
    delivered: int = 0
    duplicates: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.plan.seed)

    def add(self, event: Mapping[str, Any]) -> None:
        """S3 owes this notification (and maybe a second copy of it)."""
        self._pending.append(event)
        if self._rng.random() < self.plan.duplicate_share:
            # The copy comes later, somewhere after the original.
            self._pending.append(event)
            self.duplicates += 1

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __len__(self) -> int:
        return len(self._pending)

    def next(self) -> Mapping[str, Any]:
        """The next delivery: one of the first ``reorder_window`` pending events."""
        index = self._rng.randrange(min(len(self._pending), max(1, self.plan.reorder_window)))
        self.delivered += 1
        return self._pending.pop(index)
