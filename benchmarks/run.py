"""One command that measures dynamo-ingest's speed and cost claims against boto3 loops.

``python -m benchmarks.run [--rows 1000000] [--scale-rows 4000000] [--quick]`` generates the
CSVs under ``benchmarks/data/`` (git-ignored), starts a moto server and the AWS-like DynamoDB
double as child processes (always stopped at the end), then measures, against the same
endpoints in the same run:

1. the null sink (client cost only): a boto3 ``Table.batch_writer()`` loop (the baseline),
   a ``put_item`` loop (a sample, extrapolated) and ``dynamo-ingest run`` with its default
   engine (``auto``) and with ``--engine spark``: CPU-seconds of the whole process tree, wall
   time, peak RSS;
2. the capacity-limited endpoint: achieved WCU/s ÷ configured and items bounced ÷ written,
   for the baseline and ``dynamo-ingest run --write_rate <capacity>`` on each engine;
3. scale: each engine at ``--rows`` and ``--scale-rows`` (CPU per million items against the
   baseline's, peak RSS and wall time ratios).

It prints Markdown tables and writes ``benchmarks/results/latest.json`` and
``benchmarks/results/benchmark.png`` (``--quick`` writes under ``benchmarks/data/`` instead).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.endpoints import LocalEndpoints
from benchmarks.procmon import REPO_ROOT, TreeUsage, measure
from benchmarks.report import describe_machine, draw_plot, markdown_tables

BENCH_DIR = REPO_ROOT / "benchmarks"
TABLE = "bench_null_sink"
CAPACITY_TABLE = "bench_capacity"
LEDGER_TABLE = "bench-ledger"
KEY = "orderId"
UNLIMITED_WCU_S = 10_000_000  # the null sink has no capacity: no pacing
# dynamo-ingest's runs: "auto" is `dynamo-ingest run` as a user types it (the default engine),
# "spark" and "local" add --engine.
ENGINES = ("auto", "spark", "local")
TOOLS = ("batch_writer", "put_item", *ENGINES)


class BenchmarkError(Exception):
    """A measured command failed in a way that makes its numbers meaningless."""


@dataclass(frozen=True)
class Settings:
    """What to measure, from the command line."""

    rows: int
    scale_rows: int
    capacity_wcu_s: float
    partition_capacity_wcu_s: float
    capacity_seconds: float
    put_item_sample: int
    worker_stage_rows: int
    tools: tuple[str, ...]
    data_dir: Path
    out_dir: Path
    quick: bool

    @property
    def capacity_rows(self) -> int:
        """Rows of 1 WCU that keep the capacity-limited endpoint busy ``capacity_seconds``."""
        return int(self.capacity_wcu_s * self.capacity_seconds)


def dataset(data_dir: Path, rows: int) -> Path:
    """The orders CSV with ``rows`` rows (no duplicates, no bad rows), generated once."""
    from dynamo_ingest_cli.datagen import generate_csv

    path = data_dir / f"orders-{rows}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        generate_csv(partial, rows, seed=7, duplicate_every=None, bad_every=None)
        partial.rename(path)
    return path


def _python() -> str:
    return sys.executable


def _ingest_command(path: Path, table: str, write_rate: float, report: Path,
                    engine: str) -> list[str]:
    script = shutil.which("dynamo-ingest", path=str(Path(sys.executable).parent))
    if script is None:
        raise BenchmarkError(f"dynamo-ingest is not installed beside {sys.executable}: run "
                             "`pip install -e .` in the repository")
    command = [script, "run", "--source_path", str(path), "--target_table", table,
               "--partition_key", KEY, "--write_rate", f"{write_rate:g}",
               "--ledger_table", LEDGER_TABLE, "--report_path", str(report), "--restart",
               "--quiet"]
    return command if engine == "auto" else [*command, "--engine", engine]


def _baseline_command(mode: str, path: Path, table: str, result: Path,
                      limit: int | None = None) -> list[str]:
    command = [_python(), "-m", "benchmarks.baselines", mode, "--csv", str(path), "--table",
               table, "--result", str(result)]
    return command + (["--limit", str(limit)] if limit is not None else [])


class Bench:
    """One benchmark run: endpoints, logs and the measured commands."""

    def __init__(self, settings: Settings, endpoints: LocalEndpoints) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self.logs = settings.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def run_measured(self, name: str, command: list[str],
                     extra_env: dict[str, str] | None = None) -> tuple[TreeUsage, list[float]]:
        """Measure ``command``; also the load averages before and after (the machine is shared)."""
        load_before = os.getloadavg()[0]
        shown = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command))
        print(f"  {name}: {shown}", flush=True)
        usage = measure(command, env={**self.endpoints.environment(), **(extra_env or {})},
                        log_path=self.logs / f"{name}.log", timeout_s=3 * 3600)
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        print(f"    → {usage.cpu_s:.1f} CPU-s, {usage.wall_s:.1f} s wall, "
              f"{usage.peak_rss_bytes / 2**20:.0f} MB peak RSS, exit {usage.returncode}",
              flush=True)
        return usage, load

    def baseline(self, name: str, mode: str, path: Path, table: str,
                 limit: int | None = None) -> tuple[TreeUsage, dict[str, Any], list[float]]:
        """A boto3 loop as its own process; its result file says how many items it sent."""
        result_path = self.logs / f"{name}.result.json"
        result_path.unlink(missing_ok=True)
        usage, load = self.run_measured(name, _baseline_command(mode, path, table, result_path,
                                                                limit))
        if not result_path.exists():
            raise BenchmarkError(f"{name} exited with {usage.returncode} without a result (see "
                                 f"{self.logs / (name + '.log')})")
        return usage, json.loads(result_path.read_text()), load

    def ingest(self, name: str, path: Path, table: str, write_rate: float, engine: str,
               ) -> tuple[TreeUsage, dict[str, Any], list[float]]:
        """``dynamo-ingest run`` as a subprocess; its JSON run report."""
        report_path = self.logs / f"{name}.report.json"
        report_path.unlink(missing_ok=True)
        usage, load = self.run_measured(name, _ingest_command(path, table, write_rate,
                                                              report_path, engine))
        if not report_path.exists():
            raise BenchmarkError(f"{name} exited with {usage.returncode} without a run report "
                                 f"(see {self.logs / (name + '.log')})")
        return usage, json.loads(report_path.read_text()), load

    def ingest_null_sink(self, name: str, path: Path, rows: int, engine: str) -> dict[str, Any]:
        """One dynamo-ingest run on the null sink, which must write every row."""
        self.null_sink_plan()
        usage, report, load = self.ingest(name, path, TABLE, UNLIMITED_WCU_S, engine)
        if report.get("status") != "SUCCEEDED" or report.get("items_written") != rows:
            raise BenchmarkError(f"dynamo-ingest --engine {engine}, {rows:,} rows: {report}")
        return {"items": rows, "usage": usage.to_json(), "engine": report.get("engine"),
                "engine_reason": report.get("engine_reason"),
                "cpu_s_per_million": usage.cpu_s / rows * 1e6, "load": load, "report": report}

    def null_sink_plan(self) -> None:
        # Scoped to the target table: the ledger's checkpoints reach moto as in AWS.
        self.endpoints.set_plan(null_sink=True, tables=[TABLE])

    def capacity_plan(self) -> None:
        self.endpoints.set_plan(null_sink=True, tables=[CAPACITY_TABLE],
                                capacity_wcu_s=self.settings.capacity_wcu_s,
                                partition_key_wcu_s=self.settings.partition_capacity_wcu_s)


def _accepted(stats: dict[str, Any], expected: int, what: str) -> None:
    if stats["items_accepted"] < expected:
        raise BenchmarkError(f"{what}: the endpoint accepted {stats['items_accepted']:,} items, "
                             f"expected {expected:,}: the measured run did not finish its work")


def measure_null_sink(bench: Bench, path: Path, rows: int) -> dict[str, Any]:
    """CPU per million items of each tool on the null sink."""
    settings = bench.settings
    out: dict[str, Any] = {}
    if "batch_writer" in settings.tools:
        bench.null_sink_plan()
        usage, result, load = bench.baseline("null-batch_writer", "batch_writer", path, TABLE)
        _accepted(bench.endpoints.stats(), rows, "batch_writer")
        out["batch_writer"] = {"items": result["items_sent"], "usage": usage.to_json(),
                               "cpu_s_per_million": usage.cpu_s / rows * 1e6, "load": load}
    if "put_item" in settings.tools:
        sample = min(settings.put_item_sample, rows)
        bench.null_sink_plan()
        startup, _, _ = bench.baseline("null-put_item-startup", "put_item", path, TABLE, 0)
        usage, result, load = bench.baseline("null-put_item", "put_item", path, TABLE, sample)
        _accepted(bench.endpoints.stats(), sample, "put_item")
        per_item = max(0.0, usage.cpu_s - startup.cpu_s) / sample
        out["put_item"] = {"items": sample, "usage": usage.to_json(),
                           "startup_cpu_s": startup.cpu_s,
                           "cpu_s_per_million": startup.cpu_s + per_item * 1e6, "load": load}
    for engine in ENGINES:
        if engine not in settings.tools:
            continue
        if engine == "local" and out.get("auto", {}).get("engine") == "local":
            out["local"] = {**out["auto"], "same_run_as": "auto"}  # auto chose it: not again
            continue
        out[engine] = bench.ingest_null_sink(f"null-{engine}", path, rows, engine)
    baseline = out.get("batch_writer", {}).get("cpu_s_per_million")
    for result in out.values():
        result["vs_baseline"] = result["cpu_s_per_million"] / baseline if baseline else None
    return out


def capacity_metrics(stats: dict[str, Any], capacity_wcu_s: float) -> dict[str, Any]:
    """Achieved WCU/s (mean of the whole seconds between the first and the last accepted
    write, which are partial) ÷ configured, and items bounced ÷ items written."""
    by_second = {int(k): float(v) for k, v in stats["wcu_by_second"].items() if float(v) > 0}
    if not by_second:
        series: list[float] = []
    else:
        first, last = min(by_second), max(by_second)
        series = [by_second.get(s, 0.0) for s in range(first, last + 1)]
    inner = series[1:-1] if len(series) >= 3 else series
    achieved = sum(inner) / len(inner) if inner else 0.0
    bounced = int(stats["items_unprocessed"]) + int(stats["items_throttled"])
    written = int(stats["items_accepted"])
    return {"achieved_wcu_s": achieved, "achieved_ratio": achieved / capacity_wcu_s,
            "items_written": written, "items_bounced": bounced,
            "bounced_ratio": bounced / written if written else 0.0,
            "peak_wcu_s": max(series, default=0.0), "wcu_by_second": series}


def measure_capacity(bench: Bench, path: Path, rows: int) -> dict[str, Any]:
    """Capacity use and bounced share for the baseline and dynamo-ingest."""
    settings = bench.settings
    out: dict[str, Any] = {}
    if "batch_writer" in settings.tools:
        bench.capacity_plan()
        usage, result, _ = bench.baseline("capacity-batch_writer", "batch_writer", path,
                                          CAPACITY_TABLE)
        metrics = capacity_metrics(bench.endpoints.stats(), settings.capacity_wcu_s)
        outcome = ("finished" if not result["error"] else
                   f"died after {result['items_sent']:,} items: {result['error'][:80]}")
        out["batch_writer"] = {**metrics, "wall_s": usage.wall_s, "cpu_s": usage.cpu_s,
                               "outcome": outcome}
    for engine in ("local", "spark"):
        if engine not in settings.tools:
            continue
        bench.capacity_plan()
        usage, report, _ = bench.ingest(f"capacity-{engine}", path, CAPACITY_TABLE,
                                        settings.capacity_wcu_s, engine)
        metrics = capacity_metrics(bench.endpoints.stats(), settings.capacity_wcu_s)
        outcome = f"{report.get('status')}, {report.get('items_written', 0):,} written"
        out[engine] = {**metrics, "wall_s": usage.wall_s, "cpu_s": usage.cpu_s,
                       "outcome": outcome, "write_rate": "--write_rate "
                       f"{settings.capacity_wcu_s:g}",
                       "throttled_retries": report.get("throttled_retries"),
                       "items_bounced_reported": report.get("items_bounced")}
    for result in out.values():
        if result["items_written"] < rows and "finished" in result["outcome"]:
            raise BenchmarkError(f"the capacity run wrote {result['items_written']:,} of {rows:,}")
    return out


def measure_scale(bench: Bench, null: dict[str, Any], path: Path,
                  rows: int) -> dict[str, Any]:
    """Each engine at ``--scale-rows`` beside its ``--rows`` run on the null sink: CPU per
    million items against the baseline's (whose cost per item does not change with the
    file: no start-up to speak of), peak RSS and wall time ratios."""
    baseline = null.get("batch_writer", {}).get("cpu_s_per_million")
    out: dict[str, Any] = {}
    for engine in ("local", "spark"):
        small = null.get(engine)
        if small is None:
            continue
        big = bench.ingest_null_sink(f"scale-{engine}", path, rows, engine)
        points = [{"rows": run["items"], "wall_s": run["usage"]["wall_s"],
                   "peak_rss_bytes": run["usage"]["peak_rss_bytes"],
                   "cpu_s": run["usage"]["cpu_s"],
                   "vs_baseline": run["cpu_s_per_million"] / baseline if baseline else None}
                  for run in (small, big)]
        out[engine] = {"points": points, "rows_ratio": rows / small["items"],
                       "time_ratio": big["usage"]["wall_s"] / small["usage"]["wall_s"],
                       "rss_ratio": big["usage"]["peak_rss_bytes"]
                       / small["usage"]["peak_rss_bytes"],
                       "cpu_by_component": big["usage"]["cpu_by_component"]}
    return out


def measure_worker_stages(bench: Bench, path: Path, rows: int) -> dict[str, Any]:
    """The Python worker's per-item CPU by stage (``benchmarks.worker``) on the null sink."""
    bench.null_sink_plan()
    command = [_python(), "-m", "benchmarks.worker", "--csv", str(path), "--rows", str(rows),
               "--table", TABLE, "--json"]
    done = subprocess.run(command, env=bench.endpoints.environment(), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=3600, check=False)
    if done.returncode != 0:
        raise BenchmarkError(f"benchmarks.worker failed: {done.stderr[-2000:]}")
    return {"rows": rows, "micros_per_item": json.loads(done.stdout)}


def ensure_tables(endpoints: LocalEndpoints,
                  tables: Sequence[str] = (TABLE, CAPACITY_TABLE)) -> None:
    """Create the tables the measured commands write to (on moto, through the double)."""
    from dynamo_ingest.core.aws import AwsConfig

    from local_aws.resources import AwsClients, ensure_resources

    clients = AwsClients.from_config(AwsConfig.from_environ(endpoints.environment()))
    for table in tables:
        ensure_resources(clients, bucket="dynamo-ingest-bench", database="bench",
                         target_table=table, partition_key=(KEY, "S"), sort_key=None,
                         ledger_table=LEDGER_TABLE)


def run(settings: Settings) -> dict[str, Any]:
    """Every measurement; returns the results document."""
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "config": {"rows": settings.rows, "scale_rows": settings.scale_rows,
                   "capacity_wcu_s": settings.capacity_wcu_s,
                   "partition_capacity_wcu_s": settings.partition_capacity_wcu_s,
                   "capacity_rows": settings.capacity_rows,
                   "put_item_sample": settings.put_item_sample, "tools": list(settings.tools),
                   "quick": settings.quick},
    }
    print("generating data …", flush=True)
    path = dataset(settings.data_dir, settings.rows)
    capacity_path = dataset(settings.data_dir, settings.capacity_rows)
    scale_path = dataset(settings.data_dir, settings.scale_rows) if settings.scale_rows else None
    with LocalEndpoints(settings.data_dir / "logs") as endpoints:
        ensure_tables(endpoints)
        bench = Bench(settings, endpoints)
        print(f"null sink, {settings.rows:,} rows:", flush=True)
        results["null_sink"] = measure_null_sink(bench, path, settings.rows)
        if settings.worker_stage_rows:
            print("python worker stages:", flush=True)
            results["python_worker_stages"] = measure_worker_stages(
                bench, path, min(settings.worker_stage_rows, settings.rows))
        if settings.capacity_seconds > 0:
            print(f"capacity {settings.capacity_wcu_s:,.0f} WCU/s, "
                  f"{settings.capacity_rows:,} rows:", flush=True)
            results["capacity"] = measure_capacity(bench, capacity_path, settings.capacity_rows)
        if scale_path is not None:
            print(f"scale, {settings.scale_rows:,} rows:", flush=True)
            results["scale"] = measure_scale(bench, results["null_sink"], scale_path,
                                             settings.scale_rows)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


def parse_settings(argv: Sequence[str] | None) -> Settings:
    """Command-line arguments; ``--quick`` shrinks every size for a try-out."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="rows for the null sink (default 1,000,000)")
    parser.add_argument("--scale-rows", type=int,
                        help="rows of the scale run (default 4,000,000; 0 skips it)")
    parser.add_argument("--capacity", type=float, default=1500.0,
                        help="table write capacity of the limited endpoint, WCU/s")
    parser.add_argument("--partition-capacity", type=float, default=1000.0,
                        help="write capacity per partition-key value, WCU/s")
    parser.add_argument("--capacity-seconds", type=float,
                        help="seconds of capacity the capacity file needs (default 120; 0 "
                             "skips the capacity runs)")
    parser.add_argument("--put-item-sample", type=int, help="rows of the put_item sample")
    parser.add_argument("--worker-stage-rows", type=int,
                        help="rows of the Python worker breakdown (0 skips it)")
    parser.add_argument("--tools", default=",".join(TOOLS),
                        help=f"comma-separated subset of {', '.join(TOOLS)}")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes; results under benchmarks/data/quick-results/")
    parser.add_argument("--data-dir", type=Path, default=BENCH_DIR / "data")
    parser.add_argument("--out-dir", type=Path, help="where latest.json and benchmark.png go")
    args = parser.parse_args(argv)
    tools = tuple(t.strip() for t in args.tools.split(",") if t.strip())
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools {unknown}: choose from {', '.join(TOOLS)}")

    def pick(value: int | float | None, full: float, quick: float) -> float:
        return float(value) if value is not None else (quick if args.quick else full)

    out_dir = args.out_dir or (args.data_dir / "quick-results" if args.quick
                               else BENCH_DIR / "results")
    return Settings(rows=int(pick(args.rows, 1_000_000, 20_000)),
                    scale_rows=int(pick(args.scale_rows, 4_000_000, 80_000)),
                    capacity_wcu_s=args.capacity,
                    partition_capacity_wcu_s=args.partition_capacity,
                    capacity_seconds=pick(args.capacity_seconds, 120, 15),
                    put_item_sample=int(pick(args.put_item_sample, 20_000, 2_000)),
                    worker_stage_rows=int(pick(args.worker_stage_rows, 100_000, 5_000)),
                    tools=tools,
                    data_dir=args.data_dir, out_dir=out_dir, quick=args.quick)


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the tables, write the JSON and the plot."""
    settings = parse_settings(argv)
    results = run(settings)
    tables = markdown_tables(results)
    print()
    print(tables)
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    (settings.out_dir / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    draw_plot(results, settings.out_dir / "benchmark.png")
    (settings.out_dir / "latest.md").write_text(tables)
    print(f"wrote {settings.out_dir / 'latest.json'} and {settings.out_dir / 'benchmark.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
