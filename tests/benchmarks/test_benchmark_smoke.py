"""The benchmark machinery on a tiny file: the process-tree meter, the capacity figures, and
one small end-to-end run of ``benchmarks.run`` (the boto3 loops and the in-process worker
stages; the job's Spark run is measured the same way and covered by the job's own tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run as bench_run
from benchmarks.procmon import TreeSampler, measure

# One script, three roles; every process writes its own CPU clock just before it exits, the
# exact figure the meter is held to (CPU clocks, so a busy machine changes nothing).
TREE = """
import os, signal, subprocess, sys, time
role, out = sys.argv[1], sys.argv[2]

def burn(seconds):
    start = time.process_time()
    while time.process_time() - start < seconds:
        pass

def report(name):
    with open(os.path.join(out, name), "w") as f:
        f.write(repr(time.process_time()))

if role == "orphan":
    burn(0.6)
    report("orphan")
elif role == "launcher":
    # Exits at once: the orphan's parent is gone, so only a subreaper accounts for it.
    subprocess.Popen([sys.executable, __file__, "orphan", out])
    report("launcher")
else:
    subprocess.run([sys.executable, __file__, "launcher", out], check=True)
    # A child of a parent ignoring SIGCHLD: the kernel accounts it to no one (PySpark's daemon).
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if os.fork() == 0:
        burn(0.4)
        report("unreaped")
        os._exit(0)
    burn(0.9)
    try:
        os.wait()  # with SIGCHLD ignored: returns once the kernel has dropped the child
    except ChildProcessError:
        pass
    report("driver")
"""
# CPU a Python process spends after its report (interpreter shutdown, exit), summed over the
# tree; less than any burn above, so a process counted twice cannot hide in it.
EXIT_CPU_S = 0.2
# /proc reports CPU in clock ticks: each sampled figure may read up to two ticks low.
TICKS_S = 0.02


def reported(out: Path, name: str) -> float:
    return float((out / name).read_text())


def test_the_meter_counts_the_whole_tree_with_orphans_and_unreaped_children(
        tmp_path: Path) -> None:
    script, out = tmp_path / "tree.py", tmp_path / "cpu"
    script.write_text(TREE)
    out.mkdir()

    usage = measure([sys.executable, str(script), "driver", str(out)], interval_s=0.05)

    driver, launcher, orphan, unreaped = (
        reported(out, name) for name in ("driver", "launcher", "orphan", "unreaped"))
    kernel = usage.cpu_user_s + usage.cpu_sys_s
    assert usage.returncode == 0
    # The kernel's count covers every process some parent waited for: the driver, the
    # launcher (the driver waited) and the orphan (the reaper adopted and waited for it) …
    assert driver + launcher + orphan - TICKS_S <= kernel <= driver + launcher + orphan + EXIT_CPU_S
    # … and not the forked child, which only samples see; they never count more than it used.
    # (That the samples do count it is tested on a tree the test steps through, below.)
    assert 0.0 <= usage.cpu_unreaped_s <= unreaped + TICKS_S
    assert usage.cpu_s <= driver + launcher + orphan + unreaped + EXIT_CPU_S
    # The split adds up to the total, and the orphan (0.6 s) is not taken for the driver.
    assert sum(usage.cpu_by_component.values()) == pytest.approx(usage.cpu_s)
    assert usage.cpu_by_component["driver"] <= driver + EXIT_CPU_S


# The parent starts its child, then (told by the test) ignores SIGCHLD: the kernel drops the
# child's CPU although its parent did not ignore SIGCHLD when the child was first seen.
LATE_IGNORE = """
import os, signal, sys, time
r, w = os.pipe()
if os.fork() == 0:
    os.close(w)
    control = os.fdopen(r)
    control.readline()
    start = time.process_time()
    while time.process_time() - start < 0.3:
        pass
    print(time.process_time(), flush=True)
    control.readline()
    os._exit(0)
os.close(r)
child = os.fdopen(w, "w")
print("started", flush=True)
sys.stdin.readline()
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
child.write("burn\\n")
child.flush()
sys.stdin.readline()
child.write("exit\\n")
child.flush()
try:
    os.wait()  # returns once the kernel has dropped the child
except ChildProcessError:
    pass
print("dropped", flush=True)
"""


def test_the_sampler_counts_a_child_whose_parent_ignores_sigchld_only_later() -> None:
    parent = subprocess.Popen([sys.executable, "-c", LATE_IGNORE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    to_parent, from_parent = parent.stdin, parent.stdout
    assert to_parent is not None
    assert from_parent is not None

    def step() -> str:
        to_parent.write("\n")
        to_parent.flush()
        return from_parent.readline()

    try:
        sampler = TreeSampler(parent.pid)  # samples the parent's descendants: its child
        assert from_parent.readline() == "started\n"
        sampler.sample()  # first sight: the parent does not ignore SIGCHLD yet
        child_cpu = float(step())  # the child has burnt and waits
        sampler.sample()  # the parent ignores SIGCHLD now
        assert step() == "dropped\n"
        assert parent.wait(timeout=60) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()

    assert sampler.processes == 1
    assert sampler.peak_rss > 0
    assert sampler.unreaped_cpu(set()) == pytest.approx(child_cpu, abs=TICKS_S)


ORPHANED_FORK = """
import os, signal, time
signal.signal(signal.SIGCHLD, signal.SIG_IGN)
parent = os.getpid()
if os.fork() == 0:
    # Outlive the parent, by polling (bounded), whatever the machine's load: the reaper
    # adopts this one and waits for it.
    for _ in range(60_000):
        if os.getppid() != parent:
            break
        time.sleep(0.001)
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


def test_a_small_benchmark_run_measures_the_in_process_engine_beside_the_baseline(
        tmp_path: Path) -> None:
    # Spark's runs are measured the same way (--tools spark); they are left out here for time.
    rows, scale_rows, capacity = 2000, 4000, 1000.0
    code = bench_run.main([
        "--rows", str(rows), "--scale-rows", str(scale_rows), "--capacity", str(capacity),
        "--capacity-seconds", "2", "--worker-stage-rows", "0",
        "--tools", "batch_writer,auto,local", "--data-dir", str(tmp_path / "data"),
        "--out-dir", str(tmp_path / "out")])

    results = json.loads((tmp_path / "out" / "latest.json").read_text())
    null = results["null_sink"]
    assert code == 0
    # A 2,000-row file is small: the default engine is the in-process one, measured once.
    assert null["auto"]["engine"] == "local"
    assert null["auto"]["engine_reason"].startswith("local: ")
    assert null["local"]["same_run_as"] == "auto"
    assert null["auto"]["vs_baseline"] == pytest.approx(
        null["auto"]["cpu_s_per_million"] / null["batch_writer"]["cpu_s_per_million"])
    cap = results["capacity"]["local"]
    assert cap["items_written"] == results["config"]["capacity_rows"] == 2 * capacity
    assert cap["outcome"] == f"SUCCEEDED, {2 * capacity:,.0f} written"
    scale = results["scale"]["local"]
    assert [p["rows"] for p in scale["points"]] == [rows, scale_rows]
    assert scale["rss_ratio"] == pytest.approx(
        scale["points"][1]["peak_rss_bytes"] / scale["points"][0]["peak_rss_bytes"])
    assert "spark" not in results["scale"]
    tables = (tmp_path / "out" / "latest.md").read_text()
    assert "dynamo-ingest run (default engine), chose local" in tables
    assert "| local | 4,000 |" in tables
