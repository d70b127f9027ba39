"""The Lambdas' settings: the environment contract terraform relies on."""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import Any

import pytest

from callback_lambda import settings as callback_settings
from loader_lambda import settings as loader_settings
from trigger_lambda import settings as trigger_settings

TRIGGER_REQUIRED = {"GLUE_JOB_NAME": "job", "LEDGER_TABLE": "ledger", "TARGET_TABLE": "orders",
                    "PARTITION_KEY": "order_id", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}
CALLBACK_REQUIRED = {"GLUE_JOB_NAME": "job", "LEDGER_TABLE": "ledger",
                     "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}
LOADER_REQUIRED = {"LEDGER_TABLE": "ledger", "SNS_TOPIC_ARN": "arn:aws:sns:us-east-1:1:t"}


def _environ_reads(module: Any) -> dict[str, str | None]:
    """Every variable ``from_env`` reads: name → literal default (None when required)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(module.Settings.from_env)))
    reads: dict[str, str | None] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) == "environ":
            assert isinstance(node.slice, ast.Constant)
            reads[str(node.slice.value)] = None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and getattr(node.func.value, "id", None) == "environ"):
            assert node.func.attr == "get"
            name, default = node.args
            assert isinstance(name, ast.Constant)
            assert isinstance(default, ast.Constant)
            reads[str(name.value)] = str(default.value)
    return reads


def test_the_environment_contract_is_read_with_literal_names() -> None:
    assert _environ_reads(trigger_settings) == {
        "GLUE_JOB_NAME": None, "LEDGER_TABLE": None, "TARGET_TABLE": None,
        "PARTITION_KEY": None, "SNS_TOPIC_ARN": None, "SORT_KEY": "", "CATALOG_DATABASE": "",
        "CATALOG_TABLE": "", "INCOMING_PREFIX": "incoming/",
        "ERROR_PREFIX": "error/", "SOURCE_BUCKET": "", "UPLOAD_ORDER": "serial",
        "TABLE_MAX_LOADS": "3", "SWEEP_GRACE_S": "300", "LOADER_FUNCTION": "",
        "SMALL_FILE_BYTES": "16777216"}
    assert _environ_reads(callback_settings) == {
        "GLUE_JOB_NAME": None, "LEDGER_TABLE": None, "SNS_TOPIC_ARN": None,
        "MAX_ATTEMPTS": "3", "INCOMING_PREFIX": "incoming/", "COMPLETE_PREFIX": "complete/",
        "ERROR_PREFIX": "error/", "DISPATCHER_FUNCTION": ""}


def test_defaults_match_the_dataclasses_and_round_trip() -> None:
    trigger = trigger_settings.Settings.from_env(TRIGGER_REQUIRED)
    assert trigger == trigger_settings.Settings(
        glue_job_name="job", ledger_table="ledger", target_table="orders",
        partition_key="order_id", sns_topic_arn="arn:aws:sns:us-east-1:1:t")
    assert trigger_settings.Settings.from_env(trigger.to_env()) == trigger
    callback = callback_settings.Settings.from_env(CALLBACK_REQUIRED)
    assert callback == callback_settings.Settings(glue_job_name="job", ledger_table="ledger",
                                                  sns_topic_arn="arn:aws:sns:us-east-1:1:t")
    assert callback.max_attempts == 3
    assert callback_settings.Settings.from_env(callback.to_env()) == callback


@pytest.mark.parametrize(("module", "environ", "match"), [
    (trigger_settings, {k: v for k, v in TRIGGER_REQUIRED.items() if k != "TARGET_TABLE"},
     "TARGET_TABLE is required"),
    (trigger_settings, {**TRIGGER_REQUIRED, "CATALOG_DATABASE": "db"}, "go together"),
    (trigger_settings, {**TRIGGER_REQUIRED, "ERROR_PREFIX": "incoming/error/"}, "overlap"),
    (trigger_settings, {**TRIGGER_REQUIRED, "INCOMING_PREFIX": ""}, "INCOMING_PREFIX must not"),
    (callback_settings, {**CALLBACK_REQUIRED, "MAX_ATTEMPTS": "three"}, "whole number"),
    (callback_settings, {**CALLBACK_REQUIRED, "MAX_ATTEMPTS": "0"}, "at least 1"),
    (callback_settings, {**CALLBACK_REQUIRED, "COMPLETE_PREFIX": "incoming/done/"},
     "would look like a new upload"),
    (callback_settings, {"LEDGER_TABLE": "x", "SNS_TOPIC_ARN": "y"}, "GLUE_JOB_NAME"),
])
def test_bad_settings_are_named(module: Any, environ: dict[str, str], match: str) -> None:
    with pytest.raises(module.SettingsError, match=match):
        module.Settings.from_env(environ)


@pytest.mark.parametrize(("module", "required"), [
    (trigger_settings, TRIGGER_REQUIRED), (callback_settings, CALLBACK_REQUIRED),
    (loader_settings, LOADER_REQUIRED)])
@pytest.mark.parametrize(("change", "message"), [
    ({"LEDGER_TABLE": ""}, "LEDGER_TABLE must not be empty"),
    ({"SNS_TOPIC_ARN": ""}, "SNS_TOPIC_ARN must not be empty"),
    ({"INCOMING_PREFIX": ""}, "INCOMING_PREFIX must not be empty"),
    ({"ERROR_PREFIX": ""}, "ERROR_PREFIX must not be empty"),
    ({"ERROR_PREFIX": "incoming/failed/"},
     "INCOMING_PREFIX 'incoming/' and ERROR_PREFIX 'incoming/failed/' overlap: a file written "
     "under one would look like a new upload under the other; use disjoint folders"),
])
def test_every_lambda_refuses_an_empty_setting_or_overlapping_folders_alike(
        module: Any, required: dict[str, str], change: dict[str, str], message: str) -> None:
    # One check (control/locations.py::settings_problem), raised as each Lambda's own error.
    with pytest.raises(module.SettingsError, match=f"^{re.escape(message)}$"):
        module.Settings.from_env({**required, **change})


@pytest.mark.parametrize(("module", "required"), [
    (callback_settings, CALLBACK_REQUIRED), (loader_settings, LOADER_REQUIRED)])
def test_the_lambdas_that_move_files_refuse_an_empty_or_overlapping_complete_folder(
        module: Any, required: dict[str, str]) -> None:
    with pytest.raises(module.SettingsError, match=r"^COMPLETE_PREFIX must not be empty$"):
        module.Settings.from_env({**required, "COMPLETE_PREFIX": ""})
    with pytest.raises(module.SettingsError, match="COMPLETE_PREFIX 'complete/' and "
                                                   "ERROR_PREFIX 'complete/error/' overlap"):
        module.Settings.from_env({**required, "ERROR_PREFIX": "complete/error/"})

