"""The README's job-argument table names every argument of the registry, and no other, with
the registry's defaults."""

from __future__ import annotations

import re
from pathlib import Path

from dynamo_ingest.core.arguments import ArgumentSpec, job_argument_specs

README = Path(__file__).resolve().parents[2] / "README.md"


def argument_table() -> dict[str, str]:
    """``--name`` → its default cell, from the table under ``## Job arguments``."""
    section = README.read_text(encoding="utf-8").split("\n## Job arguments\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `--")]
    assert rows, "expected a table of | `--argument` | default | meaning | rows"
    table: dict[str, str] = {}
    for row in rows:
        names, default = (cell.strip() for cell in row.strip("|").split("|")[:2])
        for name in re.findall(r"`(--[A-Za-z_]+)`", names):
            assert name not in table, f"{name} is in the README's argument table twice"
            table[name] = default
    return table


def default_problem(spec: ArgumentSpec, cell: str) -> str | None:
    """Why the README's default cell does not say what the registry does, or None."""
    if spec.required:
        return None if cell == "required" else f"expected 'required', found {cell!r}"
    if spec.default is None:
        return None  # described in words: the table's key, detected, none …
    literal = re.fullmatch(r"`([^`]*)`", cell)
    if literal is None:
        return f"expected `{spec.default}`, found {cell!r}"
    if spec.parse(literal.group(1)) != spec.default:
        return f"the registry's default is {spec.default!r}, the README says {cell!r}"
    return None


def test_the_readme_table_lists_every_argument_with_the_registry_default() -> None:
    table = argument_table()
    specs = {spec.option: spec for spec in job_argument_specs()}
    assert set(specs) - set(table) == set(), "arguments missing from the README's table"
    assert set(table) - set(specs) == set(), "the README lists arguments the job does not take"
    problems = {name: default_problem(specs[name], cell) for name, cell in table.items()}
    assert {name: p for name, p in problems.items() if p} == {}
