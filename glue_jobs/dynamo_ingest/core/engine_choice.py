"""Which engine loads a file: the one small-file model, used by ``--engine auto`` in the job and
by the trigger's routing (the loader Lambda or Glue).

A load takes as long as the slower of its two limits: the per-row work on the cores it has,
and the table's write rate. The in-process engine has one machine's cores (a 3,008 MB Lambda
has 2) and no start-up; Spark spreads the per-row work over a cluster but first pays its
start-up (measured here: ~16 CPU-s for a 100-row file; on Glue also its start-up time and a
one-minute minimum). Per row the in-process engine costs less than Spark's (benchmarks/), so
it is the cheaper engine for every file it can load in time: it is chosen while the predicted
load is at most :data:`SMALL_LOAD_SECONDS`.

Only sizes and rates go in (no file is read here), so the trigger can decide from the S3
event and one DescribeTable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChosenEngine = Literal["local", "spark"]

# The small-file threshold, in predicted seconds of loading. A third of a Lambda invocation's
# 15 minutes: a file the model underestimates threefold still loads in one invocation (and a
# worse one continues from its checkpoints in the next). At this length Spark's fixed start-up
# is still a large share of the load, while the per-row work on 2 cores covers ~20 million
# rows of the benchmark's orders file: past that, Glue's workers are worth their start-up.
SMALL_LOAD_SECONDS = 300.0
# The in-process engine's whole CPU per row (split, hash, spill, sort, build, write to the
# null sink), measured by `make bench` on the 1M-row orders file (benchmarks/README.md).
LOCAL_CPU_S_PER_ROW = 30e-6
# Rows per byte when a file's bytes per row are not known (the orders file: ~198 bytes a row).
DEFAULT_BYTES_PER_ROW = 200.0
LAMBDA_WORKERS = 2  # vCPUs of a 3,008 MB Lambda (~1 per 1,769 MB)


@dataclass(frozen=True)
class EngineChoice:
    """The engine and why, in one line for the log, the run report and the ledger."""

    engine: ChosenEngine
    predicted_s: float
    reason: str


def choose_engine(size_bytes: int, write_rate_wcu_s: float | None, *,
                  bytes_per_row: float | None = None, wcu_per_row: float = 1.0,
                  workers: int = LAMBDA_WORKERS,
                  threshold_s: float = SMALL_LOAD_SECONDS) -> EngineChoice:
    """``local`` when the predicted in-process load of ``size_bytes`` (uncompressed) takes at
    most ``threshold_s``, else ``spark``.

    ``write_rate_wcu_s`` is the load's budget (None: unpaced); ``wcu_per_row`` the write units
    one row's item costs (1 for rows under 1 KB, the caller's sizing rule otherwise)."""
    rows = size_bytes / max(1.0, bytes_per_row or DEFAULT_BYTES_PER_ROW)
    cpu_s = rows * LOCAL_CPU_S_PER_ROW / max(1, workers)
    write_s = rows * wcu_per_row / write_rate_wcu_s if write_rate_wcu_s else 0.0
    predicted = max(cpu_s, write_s)
    engine: ChosenEngine = "local" if predicted <= threshold_s else "spark"
    bound = (f"{rows * wcu_per_row:,.0f} WCU at {write_rate_wcu_s:,.0f} WCU/s"
             if write_s >= cpu_s else f"{rows:,.0f} rows on {workers} core(s)")
    relation = "within" if engine == "local" else "over"
    return EngineChoice(engine, predicted,
                        f"{engine}: the load is predicted at {predicted:,.0f} s ({bound}), "
                        f"{relation} the small-file threshold of {threshold_s:,.0f} s")
