"""The benchmark machinery on a tiny file: the process-tree meter, the capacity figures, and
one small end-to-end run of ``benchmarks.run`` (the boto3 loops and the in-process worker
stages; the job's Spark run is measured the same way and covered by the job's own tests)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from benchmarks import run as bench_run
from benchmarks.procmon import measure

BURN = """
import os, signal, subprocess, sys, time
def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass
# An orphan: it outlives this process, so only a subreaper accounts for it.
subprocess.Popen([sys.executable, "-c", "import time\\nt = time.process_time()\\n"
                  "while time.process_time() - t < {orphan}: pass"])
# A child of a parent ignoring SIGCHLD: the kernel accounts it to no one (PySpark's daemon).
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
if os.fork() == 0:
    burn({unreaped})
    os._exit(0)
burn({own})
"""


def test_the_meter_counts_the_whole_tree_with_orphans_and_unreaped_children(
        tmp_path: Path) -> None:
    script = tmp_path / "burn.py"
    # The forked child ends before its parent, which ignores SIGCHLD: the kernel drops it.
    script.write_text(BURN.format(orphan=0.6, unreaped=0.4, own=0.9))

    interval = 0.05
    usage = measure([sys.executable, str(script)], interval_s=interval)

    assert usage.returncode == 0
    assert usage.cpu_s >= 0.6 + 0.4 + 0.9 - 0.1  # the sampled child may lose its last tick
    assert usage.cpu_unreaped_s >= 0.3
    assert usage.processes >= 3
    # By measure()'s contract the per-component figures come from samples and miss each
    # process's last sampling interval (a fresh-clone run read 0.88 for this 0.9 s burn).
    assert usage.cpu_by_component["driver"] >= 0.9 - interval
    assert usage.peak_rss_bytes > 0


ORPHANED_FORK = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
if os.fork() == 0:
    time.sleep(0.3)  # outlive the parent: the reaper waits for this one
    start = time.process_time()
    while time.process_time() - start < 0.6:
        pass
    os._exit(0)
"""


def test_an_orphan_of_a_parent_ignoring_sigchld_is_counted_once(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(ORPHANED_FORK)

    usage = measure([sys.executable, str(script)], interval_s=0.05)

    assert 0.6 <= usage.cpu_s < 0.6 + 0.5  # twice 0.6 if it were counted twice
    assert usage.cpu_unreaped_s == 0.0


def test_capacity_figures_use_whole_seconds_and_count_every_bounce() -> None:
    stats = {"wcu_by_second": {"10": 700.0, "11": 1500.0, "12": 1400.0, "13": 0.0, "14": 300.0},
             "items_accepted": 3900, "items_unprocessed": 30, "items_throttled": 9}

    figures = bench_run.capacity_metrics(stats, 1500.0)

    assert figures["wcu_by_second"] == [700.0, 1500.0, 1400.0, 0.0, 300.0]
    assert figures["achieved_wcu_s"] == pytest.approx((1500 + 1400 + 0) / 3)
    assert figures["achieved_ratio"] == pytest.approx(figures["achieved_wcu_s"] / 1500)
    assert figures["bounced_ratio"] == pytest.approx(39 / 3900)


@pytest.mark.timeout(120)
def test_a_small_benchmark_run_writes_consistent_results(tmp_path: Path) -> None:
    rows, sample, capacity = 2000, 200, 1000.0
    code = bench_run.main([
        "--rows", str(rows), "--scale-rows", "0", "--capacity", str(capacity),
        "--capacity-seconds", "2", "--put-item-sample", str(sample), "--worker-stage-rows", "500",
        "--tools", "batch_writer,put_item", "--data-dir", str(tmp_path / "data"),
        "--out-dir", str(tmp_path / "out")])

    results = json.loads((tmp_path / "out" / "latest.json").read_text())
    null = results["null_sink"]
    baseline, put_item = null["batch_writer"], null["put_item"]
    cap = results["capacity"]["batch_writer"]
    assert code == 0
    assert (baseline["items"], put_item["items"]) == (rows, sample)
    assert baseline["cpu_s_per_million"] == pytest.approx(  # the JSON rounds to ms
        baseline["usage"]["cpu_s"] / rows * 1e6, rel=1e-3)
    assert baseline["vs_baseline"] == pytest.approx(1.0)
    assert put_item["cpu_s_per_million"] > put_item["startup_cpu_s"] > 0
    assert cap["items_written"] == results["config"]["capacity_rows"] == 2 * capacity
    assert sum(cap["wcu_by_second"]) == cap["items_written"]  # every row is one WCU
    assert cap["bounced_ratio"] == cap["items_bounced"] / cap["items_written"]
    stages = results["python_worker_stages"]["micros_per_item"]
    # Each stage adds work to the previous one; an HTTP call per batch dwarfs the noise.
    assert stages["rows"] < stages["build"] < stages["lean_http"] < stages["botocore"]
    assert results["machine"]["nproc"] >= 1
    assert (tmp_path / "out" / "benchmark.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "boto3 batch_writer (baseline)" in (tmp_path / "out" / "latest.md").read_text()
