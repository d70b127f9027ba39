"""A local Spark's own log file stays bounded: every run appends to the one file, which rolls
over to ``<file>.1`` past its size instead of growing for ever."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from dynamo_ingest.spark.runtime import SPARK_LOG_MAX_BYTES, SPARK_LOG_VARIABLE

# A fresh JVM (log4j2 reads its configuration once per JVM, and the tests' session has its
# own): it logs through Spark's own log4j2, as Spark's warnings and task failures are.
CHILD = textwrap.dedent("""
    from dynamo_ingest.spark.runtime import SPARK_LOG_MAX_BYTES, local_spark_session

    session = local_spark_session(app_name="spark-log", shuffle_partitions=1, cores="1")
    log = session.sparkContext._jvm.org.apache.logging.log4j.LogManager.getLogger("test")
    log.error("first of this run")
    log.error("x" * (SPARK_LOG_MAX_BYTES + 1))
    log.error("last of this run")
    session.stop()
""")
OLD_LINE = b"an earlier run's line\n"


@pytest.mark.spark
def test_the_spark_log_rolls_over_past_its_size_and_keeps_one_earlier_file(
        tmp_path: Path) -> None:
    log = tmp_path / "logs" / "spark.log"
    log.parent.mkdir()
    # What earlier runs left: already past the bound.
    log.write_bytes(OLD_LINE * (SPARK_LOG_MAX_BYTES // len(OLD_LINE) + 1))

    child = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, timeout=500,
                           env={**os.environ, SPARK_LOG_VARIABLE: str(log)}, check=False)

    assert child.returncode == 0, child.stderr.decode(errors="replace")[-3000:]
    logs = sorted(p.name for p in log.parent.iterdir() if not p.name.endswith(".properties"))
    assert logs == ["spark.log", "spark.log.1"]
    # The earlier runs' file rolled over at this run's first line, and was itself dropped
    # when the big line rolled over: one earlier file is kept, never more.
    current, earlier = log.read_bytes(), log.with_name("spark.log.1").read_bytes()
    assert OLD_LINE not in current
    assert OLD_LINE not in earlier
    assert b"last of this run" in current
    assert b"x" * SPARK_LOG_MAX_BYTES in earlier
    assert len(current) < SPARK_LOG_MAX_BYTES
    # Past the bound by no more than the line that crossed it: the big line and the few
    # before it (this run's first, Spark's start-up warnings).
    assert len(earlier) <= SPARK_LOG_MAX_BYTES + 64 * 1024
