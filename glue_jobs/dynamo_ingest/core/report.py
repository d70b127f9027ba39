"""The run report: the counts every run ends with, and the identity they must satisfy."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RunStatus = Literal["SUCCEEDED", "SUCCEEDED_WITH_REJECTS", "FAILED"]


@dataclass
class RowCounts:
    """What happened to the rows of one partition (or of the whole run, when summed)."""

    rows_read: int = 0
    items_written: int = 0
    rows_rejected: int = 0
    duplicate_rows: int = 0
    rows_skipped_by_resume: int = 0
    items_skipped_existing: int = 0  # --write_mode insert: the key already held an item
    items_skipped_stale: int = 0  # --version_column: the stored item is newer
    wcu_consumed: float = 0.0
    wcu_estimated: int = 0  # Σ ⌈item size / 1 KB⌉ of the items this run sent
    throttled_retries: int = 0
    items_bounced: int = 0

    def add(self, other: RowCounts) -> None:
        """Accumulate another partition's counts into this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def count_carried_rejects(self, rejects_written: int) -> None:
        """Count as rejected the rows of the rejects file that an earlier attempt rejected
        (``rejects_written`` less this attempt's ``rows_rejected``): a resumed partition
        re-emits them into its rejects part, so the file the run leaves holds them, and the
        run's report must say so. They move out of ``rows_skipped_by_resume`` (the identity
        still holds); without this, a run resumed past every rejected row reports none while
        its rejects file holds them."""
        carried = rejects_written - self.rows_rejected
        if carried > 0:
            self.rows_rejected += carried
            self.rows_skipped_by_resume -= carried

    @property
    def identity_holds(self) -> bool:
        """rows_read = written + rejected + duplicates + skipped (by resume, or kept by a
        write condition)."""
        return self.rows_read == (self.items_written + self.rows_rejected
                                  + self.duplicate_rows + self.rows_skipped_by_resume
                                  + self.items_skipped_existing + self.items_skipped_stale)


@dataclass
class RunReport:
    """The JSON every run prints at the end and writes to ``--report_path``."""

    status: RunStatus
    source_path: str
    target_table: str
    counts: RowCounts = field(default_factory=RowCounts)
    elapsed_s: float = 0.0
    rejects_path: str | None = None
    error: str | None = None
    partitions: int = 0
    attempt: int = 1
    write_rate_wcu_s: float | None = None
    # False when the run failed in a way another run with the same arguments meets again
    # (schema drift, a bad argument or mapping, a missing or mismatched table).
    retryable: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able dict; the counts sit at the top level next to ``status``."""
        data = asdict(self)
        counts = data.pop("counts")
        extra = data.pop("extra")
        data.update(counts)
        data["wcu_consumed"] = round(float(data["wcu_consumed"]), 1)
        data["elapsed_s"] = round(float(data["elapsed_s"]), 3)
        data.update(extra)
        return data

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """Inverse of :meth:`to_dict` (unknown keys go to ``extra``)."""
        data = dict(data)
        names = RowCounts.__dataclass_fields__
        counts = RowCounts(**{k: data.pop(k) for k in list(data) if k in names})
        known = {k: data.pop(k) for k in list(data) if k in cls.__dataclass_fields__}
        return cls(counts=counts, extra=data, **known)


def with_unpartitioned(file_counts: Mapping[str, int | float],
                       rows: Iterable[Mapping[str, Any]],
                       partitions: int) -> dict[str, int | float]:
    """A file's counts (summed from its partitions' checkpoints) plus those of the result
    rows past its ``partitions``: the records the in-process splitter rejected (too long to
    hold), which no partition receives or checkpoints. Every attempt splits the whole file
    again, so the last attempt's rows count each such record once."""
    beyond = RowCounts()
    for row in rows:
        if row["partition"] >= partitions:
            beyond.add(RowCounts(**{name: row[name] for name in RowCounts.__dataclass_fields__}))
    return {name: (round(value + beyond.wcu_consumed, 1) if name == "wcu_consumed"
                   else value + getattr(beyond, name))
            for name, value in file_counts.items()}
