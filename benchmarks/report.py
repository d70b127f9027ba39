"""The benchmark's outputs: the machine description, the results table (Markdown) and the plot."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil

TOOL_LABELS = {"batch_writer": "boto3 batch_writer (baseline)", "put_item": "boto3 put_item",
               "auto": "dynamo-ingest run (default engine)",
               "spark": "dynamo-ingest run --engine spark",
               "local": "dynamo-ingest run --engine local"}
ENGINE_TOOLS = ("auto", "spark", "local")


def _label(tool: str, result: dict[str, Any]) -> str:
    """The tool's label; the default engine's says which engine it chose."""
    if tool == "auto" and result.get("engine"):
        return f"{TOOL_LABELS[tool]}, chose {result['engine']}"
    if result.get("same_run_as"):
        return f"{TOOL_LABELS[tool]} (the run above)"
    return TOOL_LABELS[tool]


def describe_machine() -> dict[str, Any]:
    """Cores, memory, CPU model and the versions that matter to the numbers."""
    import boto3
    import botocore
    import pyarrow
    import pyspark

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    try:
        banner = subprocess.run(["java", "-version"], capture_output=True, text=True,
                                timeout=30, check=False).stderr
    except (OSError, subprocess.TimeoutExpired):
        banner = ""
    version = re.search(r'version "([^"]+)"', banner)
    java = f"Java {version.group(1)}" if version else "Java unknown"
    return {"nproc": len(os.sched_getaffinity(0)), "memory_gb": round(
                psutil.virtual_memory().total / 2**30, 1),
            "cpu_model": model, "python": platform.python_version(), "java": java,
            "spark": pyspark.__version__, "pyarrow": pyarrow.__version__,
            "boto3": boto3.__version__, "botocore": botocore.__version__,
            "os": platform.platform(), "load_average_at_start": [
                round(x, 2) for x in os.getloadavg()]}


def machine_line(machine: dict[str, Any]) -> str:
    """One line for the plot and the README."""
    return (f"{machine['nproc']} vCPU {machine['cpu_model']}, {machine['memory_gb']:g} GB; "
            f"Python {machine['python']}, {machine['java']}, Spark {machine['spark']}")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def markdown_tables(results: dict[str, Any]) -> str:
    """The results as Markdown tables (printed, and pasted into the README)."""
    out: list[str] = []
    null = results.get("null_sink", {})
    rows = results["config"]["rows"]
    if null:
        out += [f"**Null sink, {rows:,} rows** (client cost only: the endpoint accepts every "
                "write at once)", "",
                "| tool | items | CPU-s (user+sys, whole tree) | CPU-s per million items | "
                "× baseline | wall s | peak RSS MB |", "|---|---:|---:|---:|---:|---:|---:|"]
        for tool, result in null.items():
            usage = result["usage"]
            out.append(
                f"| {_label(tool, result)}"
                f"{' (sample, extrapolated)' if tool == 'put_item' else ''}"
                f" | {result['items']:,} | {_fmt(usage['cpu_s'])} | "
                f"{_fmt(result['cpu_s_per_million'])} | {_fmt(result.get('vs_baseline'), 2)} | "
                f"{_fmt(usage['wall_s'])} | {_fmt(usage['peak_rss_bytes'] / 2**20, 0)} |")
        for tool in ENGINE_TOOLS:
            if tool in null and not null[tool].get("same_run_as"):
                parts = null[tool]["usage"]["cpu_by_component"]
                out += ["", f"{_label(tool, null[tool])}, CPU-s by process: " + ", ".join(
                    f"{name} {seconds:.1f}" for name, seconds in parts.items() if seconds >= 0.05)]
        if null.get("auto", {}).get("engine_reason"):
            out += ["", f"The default engine's choice: {null['auto']['engine_reason']}"]
    capacity = results.get("capacity", {})
    if capacity:
        config = results["config"]
        out += ["", f"**Capacity-limited endpoint: {config['capacity_wcu_s']:,.0f} WCU/s "
                    f"(table), {config['partition_capacity_wcu_s']:,.0f} WCU/s per partition "
                    f"key, {config['capacity_rows']:,} rows of 1 WCU**", "",
                "| tool | achieved WCU/s | ÷ configured (goal ≥ 0.95) | items bounced | "
                "bounced ÷ written (goal ≤ 1%) | wall s | outcome |",
                "|---|---:|---:|---:|---:|---:|---|"]
        for tool, result in capacity.items():
            out.append(
                f"| {_label(tool, result)} | {_fmt(result['achieved_wcu_s'], 0)} | "
                f"{_fmt(result['achieved_ratio'], 3)} | {result['items_bounced']:,} | "
                f"{_fmt(100 * result['bounced_ratio'], 2)} % | {_fmt(result['wall_s'])} | "
                f"{result['outcome']} |")
    scale = results.get("scale")
    if scale:
        out += ["", "**Scale (null sink)**", "",
                "| engine | rows | CPU-s | × baseline (CPU per item) | wall s | peak RSS MB |",
                "|---|---:|---:|---:|---:|---:|"]
        for engine, figures in scale.items():
            for point in figures["points"]:
                out.append(f"| {engine} | {point['rows']:,} | {_fmt(point['cpu_s'])} | "
                           f"{_fmt(point.get('vs_baseline'), 2)} | {_fmt(point['wall_s'])} | "
                           f"{_fmt(point['peak_rss_bytes'] / 2**20, 0)} |")
        for engine, figures in scale.items():
            out += ["", f"{engine}: peak RSS ratio {_fmt(figures['rss_ratio'], 2)} (goal ≤ 1.2 "
                        f"for local), time ratio {_fmt(figures['time_ratio'], 2)} for "
                        f"{_fmt(figures['rows_ratio'], 0)}× the rows"]
    stages = results.get("python_worker_stages")
    if stages:
        out += ["", "**Python worker, µs of CPU per item, cumulative stages** (in-process, "
                    f"{stages['rows']:,} rows)", "",
                "| " + " | ".join(stages["micros_per_item"]) + " |",
                "|" + "---:|" * len(stages["micros_per_item"]),
                "| " + " | ".join(f"{v:.1f}" for v in stages["micros_per_item"].values()) + " |"]
    return "\n".join(out) + "\n"


def draw_plot(results: dict[str, Any], path: Path) -> None:
    """Three panels (CPU per million items, capacity use over time, scale) and the machine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(16, 6.4))
    _cpu_panel(axes[0], results.get("null_sink", {}))
    _capacity_panel(axes[1], results)
    _scale_panel(axes[2], results.get("scale"))
    machine = results["machine"]
    figure.suptitle(
        "dynamo-ingest vs boto3 loops, same run, same endpoints\n"
        f"{machine_line(machine)}; pyarrow {machine['pyarrow']}, boto3 {machine['boto3']}; "
        f"load average at start {machine['load_average_at_start'][0]:g} (shared machine)",
        fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)


_SHORT_LABELS = {"put_item": "put_item", "batch_writer": "batch_writer\n(baseline)",
                 "auto": "dynamo-ingest\n(default)", "spark": "dynamo-ingest\n--engine spark",
                 "local": "dynamo-ingest\n--engine local"}


def _cpu_panel(axis: Any, null: dict[str, Any]) -> None:
    axis.set_title("CPU-seconds per million items, null sink", fontsize=10)
    # put_item is ~7x the baseline: it would flatten the chart, so it is printed instead.
    names = [tool for tool in ("batch_writer", *ENGINE_TOOLS)
             if tool in null and not null[tool].get("same_run_as")]
    colours = {"driver": "#9ecae1", "jvm": "#fdae6b", "python_workers": "#74c476",
               "other": "#bdbdbd", "unsampled": "#d9d9d9"}
    labelled: set[str] = set()
    for index, tool in enumerate(names):
        result = null[tool]
        if tool not in ENGINE_TOOLS:
            axis.bar(index, result["cpu_s_per_million"], color="#6baed6")
        else:
            bottom = 0.0
            scale = 1e6 / max(1, result["items"])
            for part, seconds in result["usage"]["cpu_by_component"].items():
                if seconds * scale >= 0.5:
                    axis.bar(index, seconds * scale, bottom=bottom, color=colours[part],
                             label=None if part in labelled else part.replace("_", " "))
                    labelled.add(part)
                    bottom += seconds * scale
        ratio = result.get("vs_baseline")
        axis.text(index, result["cpu_s_per_million"],
                  f"{result['cpu_s_per_million']:,.0f}" + (f"\n{ratio:.2f}×" if ratio else ""),
                  ha="center", va="bottom", fontsize=9)
    baseline = null.get("batch_writer", {}).get("cpu_s_per_million")
    if baseline:
        axis.axhline(0.22 * baseline, color="black", linestyle="--", linewidth=0.8,
                     label="goal: 0.22× baseline (default engine)")
        axis.set_ylim(0, baseline * 1.25)
    if "put_item" in null:
        axis.text(0.98, 0.97, f"boto3 put_item: {null['put_item']['cpu_s_per_million']:,.0f} "
                              "(sample, extrapolated)", transform=axis.transAxes, ha="right",
                  va="top", fontsize=8)
    axis.set_xticks(range(len(names)), [_SHORT_LABELS[n] for n in names], fontsize=8)
    axis.set_ylabel("CPU-s (user + sys, whole process tree)")
    axis.legend(fontsize=7, loc="center right")


def _capacity_panel(axis: Any, results: dict[str, Any]) -> None:
    capacity = results.get("capacity", {})
    axis.set_title("WCU/s accepted by the capacity-limited endpoint", fontsize=10)
    for tool, result in capacity.items():
        series = result["wcu_by_second"]
        axis.plot(range(len(series)), series,
                  label=f"{_label(tool, result)}: {result['achieved_ratio']:.2f} of capacity, "
                        f"{100 * result['bounced_ratio']:.1f}% bounced", linewidth=1.2)
    if capacity:
        axis.axhline(results["config"]["capacity_wcu_s"], color="black", linestyle="--",
                     linewidth=0.8, label="configured capacity")
        axis.legend(fontsize=7, loc="lower center")
    axis.set_xlabel("seconds since the first accepted write")
    axis.set_ylabel("WCU/s")


def _scale_panel(axis: Any, scale: dict[str, Any] | None) -> None:
    axis.set_title("Scale on the null sink: CPU per item, peak RSS", fontsize=10)
    if not scale:
        axis.text(0.5, 0.5, "not measured", ha="center", transform=axis.transAxes)
        return
    bars = [(engine, point) for engine, figures in scale.items() for point in figures["points"]]
    labels = [f"{engine}\n{point['rows'] / 1e6:g}M rows" for engine, point in bars]
    ratios = [point.get("vs_baseline") or 0.0 for _, point in bars]
    axis.bar([i - 0.2 for i in range(len(bars))], ratios, width=0.4, color="#6baed6",
             label="CPU × baseline")
    twin = axis.twinx()
    twin.bar([i + 0.2 for i in range(len(bars))],
             [point["peak_rss_bytes"] / 2**20 for _, point in bars], width=0.4,
             color="#fd8d3c", label="peak RSS MB")
    axis.set_xticks(range(len(bars)), labels, fontsize=8)
    axis.set_ylabel("CPU-s per item ÷ the baseline's")
    twin.set_ylabel("peak RSS of the process tree, MB")
    axis.set_ylim(0, max(ratios, default=1.0) * 1.3 or 1.0)
    twin.set_ylim(0, max(point["peak_rss_bytes"] for _, point in bars) / 2**20 * 1.3)
    axis.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    axis.text(0.0, -0.17, "; ".join(
        f"{engine}: RSS ×{figures['rss_ratio']:.2f}, time ×{figures['time_ratio']:.2f} for "
        f"×{figures['rows_ratio']:g} rows" for engine, figures in scale.items()),
        transform=axis.transAxes, fontsize=8)
