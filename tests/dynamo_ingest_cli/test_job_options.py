"""``dynamo-ingest run`` and ``estimate`` take the job's options from the argument registry:
the same names, help, defaults and checks as the Glue job, Glue's ``--flag true|false`` form,
and help text without raw reStructuredText markup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from dynamo_ingest.core.arguments import job_argument_specs, job_arguments_from_mapping
from typer.core import TyperOption
from typer.testing import CliRunner

from dynamo_ingest_cli.job_options import GlueStyleCommand, glue_values, job_options
from dynamo_ingest_cli.main import app
from tests.glue_jobs.conftest import create_table, scan_table

CLI = Path(sys.executable).parent / "dynamo-ingest"
# estimate's own forms of four job arguments: SOURCE or --source_path, an optional table, and
# keys as NAME[:S|N] for a table that does not exist yet.
ESTIMATE_OWN = {"source_path", "target_table", "partition_key", "sort_key"}


def command_params(name: str) -> dict[str, TyperOption]:
    command = typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]
    return {p.name: p for p in command.params if isinstance(p, TyperOption)}


@pytest.mark.parametrize("command", ["run", "estimate"])
def test_the_job_options_of_a_command_are_the_registry_ones(command: str) -> None:
    params = command_params(command)
    for spec in job_argument_specs():
        if command in spec.commands:
            option = params[spec.name]
            assert option.opts == [spec.option]
            assert option.help == spec.help
        elif command == "estimate":
            assert spec.name not in params or spec.name in ESTIMATE_OWN, (
                f"estimate offers --{spec.name} outside the registry")
        else:
            raise AssertionError(f"run must offer every job argument, not --{spec.name}")


def _help(*command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_no_help_shows_raw_rst_markup() -> None:
    commands = ["", *typer.main.get_command(app).commands]  # type: ignore[attr-defined]
    for command in commands:
        text = _help(*([command] if command else []))
        assert "`" not in text, f"dynamo-ingest {command} --help shows raw RST markup:\n{text}"
        assert ":class:" not in text


def test_run_help_shows_the_registry_defaults() -> None:
    text = _help("run")
    for spec in job_argument_specs():
        assert spec.option in text
    assert "[default: auto]" in text
    assert "[default: dynamo-ingest-ledger]" in text


@pytest.mark.parametrize(("given", "restart"), [
    ([], "false"), (["--restart"], "true"), (["--restart", "true"], "true"),
    (["--restart", "TRUE"], "true"), (["--restart", "false"], "false"),
    (["--restart=true"], "true"), (["--restart=false"], "false"), (["--restart", "1"], "true"),
    (["--restart", "false", "--quiet"], "false"), (["--restart", "--quiet"], "true"),
])
def test_a_flag_takes_the_bare_form_and_glues_true_or_false(given: list[str],
                                                              restart: str) -> None:
    # A command built like run (same decorator, same command class) that prints what the job
    # would receive instead of loading.
    probe = typer.Typer()

    @probe.command("run", cls=GlueStyleCommand)
    @job_options("run")
    def probe_run(*, quiet: Annotated[bool, typer.Option("--quiet")] = False,
                  **job_values: str | bool | None) -> None:
        args = job_arguments_from_mapping(glue_values(job_values))
        typer.echo(json.dumps({**args.to_glue_arguments(), "quiet": quiet}))

    @probe.callback()
    def main() -> None:
        """Subcommands as in the real CLI."""

    result = CliRunner().invoke(probe, ["run", "--source_path", "a.csv", "--target_table", "t",
                                        *given])
    assert result.exit_code == 0, result.output
    received = json.loads(result.stdout)
    assert received["--restart"] == restart
    assert received["quiet"] == ("--quiet" in given)


# The arguments each command needs besides the flag under test.
REQUIRED_ARGS = {"run": ["--source_path", "a.csv", "--target_table", "t"],
                 "estimate": ["a.csv"], "retry": ["s3://bucket/incoming/a.csv"], "demo": []}


def test_every_flag_of_every_command_takes_true_or_false() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    with_flags = {name for name, command in commands.items()
                  if any(isinstance(p, TyperOption) and p.is_bool_flag for p in command.params)}
    assert with_flags == set(REQUIRED_ARGS), "a command with a flag is not covered here"
    for name, required in REQUIRED_ARGS.items():
        for param in command_params(name).values():
            if not param.is_bool_flag:
                continue
            flag = param.opts[0]
            for word, expected in (("true", True), ("false", False), ("yes", True)):
                context = commands[name].make_context(name, [flag, word, *required])
                assert context.params[param.name] is expected, f"{name} {flag} {word}"


@pytest.mark.parametrize("given", [["--restart", "maybe"], ["--restart=maybe"],
                                   ["--restart", "maybe", "--quiet"]])
def test_a_bad_flag_value_names_the_values_the_flag_takes(given: list[str]) -> None:
    result = CliRunner().invoke(app, ["run", "--source_path", "a.csv", "--target_table", "t",
                                      *given])
    assert result.exit_code == 2, result.output
    assert "--restart expects true or false, found 'maybe'" in result.output
    assert "unexpected extra argument" not in result.output


def test_every_flag_of_every_command_names_its_values_when_given_a_bad_one() -> None:
    for name, required in REQUIRED_ARGS.items():
        for param in command_params(name).values():
            if param.is_bool_flag and not param.secondary_opts and param.default is False:
                flag = param.opts[0]
                result = CliRunner().invoke(app, [name, *required, flag, "maybe"])
                assert result.exit_code == 2, f"{name} {flag}: {result.output}"
                assert f"{flag} expects true or false, found 'maybe'" in result.output, (
                    f"{name} {flag}: {result.output}")


def test_a_word_no_flag_takes_is_still_an_unexpected_argument() -> None:
    result = CliRunner().invoke(app, ["run", "--source_path", "a.csv", "--target_table", "t",
                                      "--restart", "true", "extra"])
    assert result.exit_code == 2, result.output
    assert "unexpected extra argument" in result.output
    assert "expects true or false" not in result.output


def test_run_checks_values_with_the_registry_before_loading(aws: str) -> None:
    result = CliRunner().invoke(app, ["run", "--source_path", "missing.csv",
                                      "--target_table", "orders", "--restart", "true",
                                      "--write_rate", "nan", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "--write_rate expects auto or a write budget" in result.output
    assert "found 'nan'" in result.output


@pytest.mark.slow
@pytest.mark.spark
def test_run_loads_with_restart_in_glue_form(aws: str, tmp_path: Path) -> None:
    create_table("orders", [("orderId", "S", "HASH")])
    source = tmp_path / "orders.csv"
    source.write_text("orderId,amount\no1,10\no2,20\no3,30\n", encoding="utf-8")
    report_path = tmp_path / "report.json"
    finished = subprocess.run(
        [str(CLI), "run", "--source_path", str(source), "--target_table", "orders",
         "--restart", "true", "--partitions", "2", "--report_path", str(report_path), "--quiet"],
        env=dict(os.environ), capture_output=True, text=True, timeout=540, check=False)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert (report["status"], report["items_written"]) == ("SUCCEEDED", 3)
    assert sorted(scan_table("orders")) == [("o1",), ("o2",), ("o3",)]
