"""The Terraform configuration agrees with the code it deploys: the functions' environment, the
job's arguments, the event rule and the S3 notification, the zips, the ledger's key schema and
the crawler definitions."""

from __future__ import annotations

import ast
import contextlib
import fnmatch
import importlib
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest
from dynamo_ingest.core.arguments import argument_names, job_argument_specs

from tests.terraform.hcl import REPO_ROOT, HclShapeError, TerraformConfig, attr, blocks
from tests.terraform.test_incoming_suffixes import notification_suffixes

EVENTS_DIR = REPO_ROOT / "tests" / "events"
# Values for the variables without a default, so that expressions can be evaluated.
REQUIRED_VARIABLES = {"target_table_name": "orders", "partition_key": "order_id"}
# Glue's own job arguments the job may carry besides the JobArguments fields (AWS Glue
# Developer Guide, "Using job parameters in AWS Glue jobs").
GLUE_ARGUMENTS = frozenset({
    "--job-language", "--extra-py-files", "--TempDir", "--enable-metrics",
    "--enable-continuous-cloudwatch-log", "--enable-glue-datacatalog", "--job-bookmark-option",
    "--custom-logGroup-prefix", "--custom-logStream-prefix", "--enable-observability-metrics",
    "--enable-spark-ui", "--spark-event-logs-path", "--additional-python-modules",
    "--python-modules-installer-option", "--conf",
})
def settings_variables(path: Path) -> set[str]:
    """Names a ``settings.py`` reads as ``environ["NAME"]`` / ``environ.get("NAME", …)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()

    def is_environ(node: ast.expr) -> bool:
        if isinstance(node, ast.Name):
            return node.id == "environ"
        return isinstance(node, ast.Attribute) and node.attr == "environ"

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            assert isinstance(node.slice, ast.Constant), (
                f"{path.name}:{node.lineno}: expected environ['NAME'] with a literal name")
            names.add(str(node.slice.value))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "get" and is_environ(node.func.value)):
            literal = bool(node.args) and isinstance(node.args[0], ast.Constant)
            assert literal, (
                f"{path.name}:{node.lineno}: expected environ.get('NAME', …) with a literal name")
            assert isinstance(node.args[0], ast.Constant)
            names.add(str(node.args[0].value))
    return names


# The loader's JOB_DEFAULT_ARGUMENTS: the job arguments among the Glue job's DefaultArguments.
JOB_DEFAULTS = "local.job_default_arguments,local.job_sort_key_argument"


def job_default_arguments(terraform: TerraformConfig) -> dict[str, str]:
    """The job arguments of the Glue job's DefaultArguments with the variables at their
    defaults (no sort key: its default is null); what only a plan knows is a placeholder."""
    assert terraform.variable_default("sort_key") is None
    resolved = terraform.resolve(terraform.local("job_default_arguments"), REQUIRED_VARIABLES)
    return {name: terraform_text(terraform, value) or f"placeholder-for-{name[2:]}"
            for name, value in resolved.items()}


def lambda_environment(terraform: TerraformConfig, function: str) -> dict[str, str]:
    """The function's environment with the default variables; what Terraform cannot know
    before apply (ARNs) becomes a placeholder."""
    resolved = terraform.resolve(terraform.local("lambda_environment")[function],
                                 REQUIRED_VARIABLES)
    env: dict[str, str] = {}
    for name, value in resolved.items():
        text = str(value)
        to_string = re.fullmatch(r"\$\{tostring\(var\.([a-z_]+)\)\}", text)
        if to_string:
            text = str(terraform.variable_default(to_string.group(1)))
        elif text == f"${{jsonencode(merge({JOB_DEFAULTS}))}}":
            text = json.dumps(job_default_arguments(terraform))
        elif "${" in text:
            text = f"placeholder-for-{name.lower()}"
        env[name] = text
    return env


@pytest.mark.parametrize("function", ["trigger", "callback", "loader"])
def test_lambda_environment_is_exactly_what_settings_reads(
        terraform: TerraformConfig, function: str) -> None:
    settings = REPO_ROOT / f"{function}_lambda" / "settings.py"
    read = settings_variables(settings)
    assert read, f"expected {settings} to read environment variables, found none"
    configured = set(terraform.local("lambda_environment")[function])
    assert configured == read, (
        f"{function}: Terraform sets {sorted(configured - read)} that settings.py does not "
        f"read, and does not set {sorted(read - configured)} that it reads")
    function_body = terraform.resource("aws_lambda_function", "handler")
    environment = blocks(function_body, "environment")[0]
    assert attr(environment, "variables") == "${local.lambda_environment[each.key]}"


@pytest.mark.parametrize("function", ["trigger", "callback", "loader"])
def test_lambda_handler_names_a_function_taking_event_and_context(
        terraform: TerraformConfig, function: str) -> None:
    handler = terraform.local("lambdas")[function]["handler"]
    module, _, name = handler.rpartition(".")
    path = REPO_ROOT.joinpath(*module.split(".")).with_suffix(".py")
    assert path.is_file(), f"{function}: handler {handler!r} expected {path} to exist"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    defined = {n.name: [a.arg for a in n.args.args] for n in tree.body
               if isinstance(n, ast.FunctionDef)}
    assert defined.get(name) == ["event", "context"], (
        f"{function}: expected def {name}(event, context) in {path.name}, found {defined}")


def test_job_default_arguments_are_arguments_the_job_parses(terraform: TerraformConfig) -> None:
    ours = set(terraform.local("job_default_arguments"))
    optional = set(re.findall(r"['\"](--[a-z_]+)['\"]", terraform.local("job_sort_key_argument")))
    assert optional == {"--sort_key"}
    names = {f"--{name}" for name in argument_names()}
    assert ours | optional <= names, (
        f"default arguments {sorted((ours | optional) - names)} are not JobArguments fields "
        f"(the job would ignore them); the job parses {sorted(names)}")
    glue_own = set(terraform.local("glue_default_arguments"))
    assert glue_own <= GLUE_ARGUMENTS, f"unknown Glue arguments {sorted(glue_own - GLUE_ARGUMENTS)}"
    assert not glue_own & names
    job = terraform.resource("aws_glue_job", "load_csv")
    assert attr(job, "default_arguments") == (
        f"${{merge(local.glue_default_arguments,{JOB_DEFAULTS})}}")


def test_the_loader_loads_with_the_glue_jobs_default_job_arguments(
        terraform: TerraformConfig) -> None:
    from loader_lambda.settings import Settings as LoaderSettings

    loader_env = terraform.local("lambda_environment")["loader"]
    assert loader_env["JOB_DEFAULT_ARGUMENTS"] == f"${{jsonencode(merge({JOB_DEFAULTS}))}}"
    settings = LoaderSettings.from_env(lambda_environment(terraform, "loader"))
    assert settings.job_default_arguments == job_default_arguments(terraform)
    assert settings.job_default_arguments["--write_rate"] == str(
        terraform.variable_default("write_rate"))


def terraform_text(terraform: TerraformConfig, value: object) -> str | None:
    """A resolved default argument as the text Glue would pass, with the variables at their
    defaults; None when only a plan can know it (an expression over other values)."""
    text = str(value)
    to_string = re.fullmatch(r"\$\{tostring\(var\.([a-z_]+)\)\}", text)
    if to_string:
        return str(terraform.variable_default(to_string.group(1)))
    fallback = re.fullmatch(r'\$\{coalesce\(var\.([a-z_]+),"([^"$]*)"\)\}', text)
    if fallback:
        chosen = terraform.variable_default(fallback.group(1))
        return fallback.group(2) if chosen is None else str(chosen)
    return None if "${" in text else text


def test_job_default_arguments_hold_the_registry_values(terraform: TerraformConfig) -> None:
    """Each default argument parses with the registry's rule, and one that the registry gives
    a default has that default, so a run started by hand behaves as the README says."""
    specs = {spec.option: spec for spec in job_argument_specs()}
    resolved = terraform.resolve(terraform.local("job_default_arguments"), REQUIRED_VARIABLES)
    checked = {}
    for name, value in resolved.items():
        text = terraform_text(terraform, value)
        if text is None:
            continue
        spec = specs[name]
        typed = spec.parse(text)  # raises ArgumentError naming the argument and the value
        if spec.default is not None:
            assert typed == spec.default, (
                f"Terraform's default {name} is {text!r}, the registry's {spec.default!r}")
        checked[name] = typed
    assert {"--write_rate", "--write_share", "--ledger_table"} <= set(checked), checked


def test_job_runs_our_script_with_our_library_on_glue_5(terraform: TerraformConfig) -> None:
    job = terraform.resource("aws_glue_job", "load_csv")
    glue_own = terraform.local("glue_default_arguments")
    assert attr(job, "glue_version") == "5.0"
    # The callback Lambda owns retries (resuming from checkpoints); a Glue retry would restart.
    assert attr(job, "max_retries") == 0
    assert glue_own["--job-bookmark-option"] == "job-bookmark-disable"
    assert glue_own["--extra-py-files"] == (
        "s3://${aws_s3_object.glue_library.bucket}/${aws_s3_object.glue_library.key}")
    script = terraform.resource("aws_s3_object", "glue_script")
    assert attr(script, "source") == "${local.repo_root}/glue_jobs/load_csv_to_dynamodb.py"
    assert (REPO_ROOT / "glue_jobs" / "load_csv_to_dynamodb.py").is_file()
    library = terraform.resource("aws_s3_object", "glue_library")
    assert attr(library, "source") == '${data.archive_file.package["glue_library"].output_path}'


# ---------------------------------------------------------------------------------------------
# Events: the rule delivers exactly what the callback acts on, the S3 notification exactly what
# the trigger acts on.
# ---------------------------------------------------------------------------------------------

def pattern_matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """EventBridge matching for exact-value patterns (the only kind this stack uses)."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(expected, Mapping):
            if not isinstance(value, Mapping) or not pattern_matches(expected, value):
                return False
            continue
        if not isinstance(expected, list) or any(isinstance(e, Mapping) for e in expected):
            raise HclShapeError(f"expected a list of exact values for {key!r}, found {expected!r}")
        values = value if isinstance(value, list) else [value]
        if not any(v in expected for v in values):
            return False
    return True


class _AwsReachedError(Exception):
    """The handler got as far as calling AWS."""


class _RecordingClient:
    """A boto3 client double that records the first call and stops the handler there."""

    def __init__(self, service: str, calls: list[str]) -> None:
        self._service = service
        self._calls = calls

    def __getattr__(self, name: str) -> Any:
        def call(*_args: Any, **_kwargs: Any) -> Any:
            self._calls.append(f"{self._service}.{name}")
            raise _AwsReachedError(f"{self._service}.{name}")
        return call


@pytest.fixture
def aws_calls_of_handler(monkeypatch: pytest.MonkeyPatch,
                         terraform: TerraformConfig) -> Callable[[str, dict[str, Any]], list[str]]:
    """Run a handler with Terraform's environment; returns the AWS calls it started."""
    calls: list[str] = []
    monkeypatch.setattr(boto3, "client", lambda service, *a, **k: _RecordingClient(service, calls))
    # Should a handler build a client some other way, it fails fast instead of reaching AWS.
    for name, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"
                        }.items():
        monkeypatch.setenv(name, value)

    def run(function: str, event: dict[str, Any]) -> list[str]:
        for name, value in lambda_environment(terraform, function).items():
            monkeypatch.setenv(name, value)
        module = importlib.import_module(f"{function}_lambda.handler")
        calls.clear()
        # Whatever the handler does after the first AWS call (it raises there) is beside the
        # point: the question is only whether it acts on the event at all.
        with contextlib.suppress(Exception):
            module.handler(event, None)
        return list(calls)

    return run


def _event_files(prefixes: tuple[str, ...]) -> list[Path]:
    files = sorted(p for p in EVENTS_DIR.glob("*.json") if p.name.startswith(prefixes))
    if not files:
        pytest.fail(f"expected raw events {prefixes} under {EVENTS_DIR}, found none")
    return files


def test_event_rule_delivers_exactly_the_events_the_callback_acts_on(
        terraform: TerraformConfig,
        aws_calls_of_handler: Callable[[str, dict[str, Any]], list[str]]) -> None:
    pattern = terraform.resolve(terraform.local("callback_event_pattern"))
    rule = terraform.resource("aws_cloudwatch_event_rule", "glue_state_change")
    assert attr(rule, "event_pattern") == "${jsonencode(local.callback_event_pattern)}"
    acted: set[str] = set()
    matched: set[str] = set()
    for path in _event_files(("glue_", "non_glue")):
        event = json.loads(path.read_text(encoding="utf-8"))
        if aws_calls_of_handler("callback", event):
            acted.add(path.name)
        if pattern_matches(pattern, event):
            matched.add(path.name)
    assert matched == acted, (
        f"the rule delivers {sorted(matched - acted)} that the callback ignores, and not "
        f"{sorted(acted - matched)} that it acts on")
    assert "glue_other_job.json" not in matched, "expected another job's events to be filtered out"
    assert {"glue_succeeded.json", "glue_failed.json"} <= matched, (
        f"expected our job's final states to reach the callback, found {sorted(matched)}")


def test_failed_runs_rule_is_a_subset_of_the_callback_rule(terraform: TerraformConfig) -> None:
    callback = terraform.resolve(terraform.local("callback_event_pattern"))
    failed = terraform.resolve(terraform.local("failed_run_event_pattern"))
    assert failed["detail"]["jobName"] == callback["detail"]["jobName"]
    assert set(failed["detail"]["state"]) <= set(callback["detail"]["state"]) - {"SUCCEEDED"}
    for name, expected in (("glue_failed.json", True), ("glue_succeeded.json", False),
                           ("glue_other_job.json", False)):
        event = json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))
        assert pattern_matches(failed, event) is expected, name


def _s3_filter_matches(notification: dict[str, Any], record: Mapping[str, Any]) -> bool:
    key = unquote_plus(str(record["s3"]["object"]["key"]), encoding="utf-8")
    event_name = f"s3:{record['eventName']}"
    return (any(fnmatch.fnmatchcase(event_name, e) for e in notification["events"])
            and key.startswith(notification["filter_prefix"])
            and key.endswith(tuple(notification["filter_suffixes"])))


def test_s3_notification_delivers_exactly_the_objects_the_trigger_acts_on(
        terraform: TerraformConfig,
        aws_calls_of_handler: Callable[[str, dict[str, Any]], list[str]]) -> None:
    body = terraform.resource("aws_s3_bucket_notification", "incoming")
    configured = blocks(body, "lambda_function")[0]
    trigger_arn = '${aws_lambda_function.handler["trigger"].arn}'
    assert attr(configured, "lambda_function_arn") == trigger_arn
    notification = {name: terraform.resolve(attr(configured, name))
                    for name in ("events", "filter_prefix")}
    # One filter per suffix, from the list the trigger checks (test_incoming_suffixes).
    notification["filter_suffixes"] = notification_suffixes()
    acted: set[str] = set()
    matched: set[str] = set()
    for path in _event_files(("s3_put", "s3_object_removed")):
        for index, record in enumerate(json.loads(path.read_text(encoding="utf-8"))["Records"]):
            name = f"{path.name}#{index}"
            # S3 delivers one record per notification.
            if aws_calls_of_handler("trigger", {"Records": [record]}):
                acted.add(name)
            if _s3_filter_matches(notification, record):
                matched.add(name)
    assert matched == acted, (
        f"S3 would deliver {sorted(matched - acted)} that the trigger ignores, and not "
        f"{sorted(acted - matched)} that it acts on")
    assert "s3_put.json#0" in acted, "expected the trigger to act on a plain put event"
    assert "s3_put_outside_prefix.json#0" not in matched, (
        "expected objects outside incoming/ to be filtered out by S3 already")


def test_permissions_let_only_our_sources_invoke_the_functions(terraform: TerraformConfig) -> None:
    s3 = terraform.resource("aws_lambda_permission", "s3_invokes_trigger")
    assert attr(s3, "principal") == "s3.amazonaws.com"
    assert attr(s3, "source_arn") == "${aws_s3_bucket.data.arn}"
    assert attr(s3, "function_name") == '${aws_lambda_function.handler["trigger"].function_name}'
    events = terraform.resource("aws_lambda_permission", "events_invoke_callback")
    assert attr(events, "principal") == "events.amazonaws.com"
    assert attr(events, "source_arn") == "${aws_cloudwatch_event_rule.glue_state_change.arn}"
    target = terraform.resource("aws_cloudwatch_event_target", "callback")
    assert attr(target, "arn") == '${aws_lambda_function.handler["callback"].arn}'


def test_failed_invocations_go_to_an_encrypted_queue_with_an_alarm(
        terraform: TerraformConfig) -> None:
    invoke = terraform.resource("aws_lambda_function_event_invoke_config", "handler")
    assert attr(invoke, "for_each") == "${local.lambdas}"
    assert attr(invoke, "maximum_retry_attempts") == "${var.async_max_retry_attempts}"
    destination = blocks(blocks(invoke, "destination_config")[0], "on_failure")[0]
    assert attr(destination, "destination") == "${aws_sqs_queue.failed_events[each.key].arn}"
    queue = terraform.resource("aws_sqs_queue", "failed_events")
    assert attr(queue, "sqs_managed_sse_enabled") is True
    alarm = terraform.resource("aws_cloudwatch_metric_alarm", "failed_events")
    queue_name = "${aws_sqs_queue.failed_events[each.key].name}"
    assert attr(alarm, "dimensions") == {"QueueName": queue_name}
    assert attr(alarm, "alarm_actions") == ["${aws_sns_topic.notifications.arn}"]


# ---------------------------------------------------------------------------------------------
# Definitions shared with the code
# ---------------------------------------------------------------------------------------------

def ledger_key_schema() -> dict[str, str]:
    """``{"HASH": name, "RANGE": name}`` from the ``KeySchema`` written in ``ledger.py``."""
    path = REPO_ROOT / "glue_jobs" / "dynamo_ingest" / "control" / "ledger.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = {target.id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 for target in node.targets if isinstance(target, ast.Name)}

    def value(node: ast.expr) -> str:
        if isinstance(node, ast.Constant):
            return str(node.value)
        if isinstance(node, ast.Name) and node.id in constants:
            return str(constants[node.id])
        raise HclShapeError(f"ledger.py: expected a literal or module constant, found "
                            f"{ast.unparse(node)}")

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "KeySchema" and isinstance(
                node.value, ast.List):
            schema: dict[str, str] = {}
            for element in node.value.elts:
                assert isinstance(element, ast.Dict)
                fields = {value(k): v for k, v in zip(element.keys, element.values, strict=True)
                          if k is not None}
                schema[value(fields["KeyType"])] = value(fields["AttributeName"])
            return schema
    raise HclShapeError(f"expected a KeySchema=[…] in {path}, found none")


def test_ledger_table_keys_are_the_ones_ledger_py_uses(terraform: TerraformConfig) -> None:
    schema = ledger_key_schema()
    assert schema == {"HASH": terraform.local("ledger_partition_key"),
                      "RANGE": terraform.local("ledger_sort_key")}, (
        f"ledger.py keys the ledger by {schema}; terraform/dynamodb.tf must use the same names")
    table = terraform.resource("aws_dynamodb_table", "ledger")
    assert attr(table, "hash_key") == "${local.ledger_partition_key}"
    assert attr(table, "range_key") == "${local.ledger_sort_key}"
    assert attr(table, "billing_mode") == "PAY_PER_REQUEST"
    assert attr(blocks(table, "point_in_time_recovery")[0], "enabled") is True
    assert attr(blocks(table, "server_side_encryption")[0], "kms_key_arn") == (
        "${aws_kms_key.main.arn}")


@pytest.mark.parametrize(("definition", "local_name"), [
    ("csv_classifier.json", "classifier_definition"), ("crawler.json", "crawler_definition")])
def test_every_crawler_setting_reaches_terraform(
        terraform: TerraformConfig, definition: str, local_name: str) -> None:
    data = json.loads((REPO_ROOT / "crawlers" / definition).read_text(encoding="utf-8"))
    glue_tf = terraform.raw_text["glue.tf"] + terraform.raw_text["locals.tf"]
    unused = [key for key in data if f"local.{local_name}.{key}" not in glue_tf]
    assert not unused, f"{definition}: {unused} are defined but Terraform never reads them"
    assert f'file("${{local.repo_root}}/crawlers/{definition}")' in terraform.raw_text["locals.tf"]


# ---------------------------------------------------------------------------------------------
# The Lambda path: the loader function, its layer, the trigger's routing, its alarms
# ---------------------------------------------------------------------------------------------

def test_the_trigger_routes_small_files_to_the_loader_function(
        terraform: TerraformConfig) -> None:
    from trigger_lambda.routing import DEFAULT_SMALL_FILE_BYTES
    from trigger_lambda.settings import Settings as TriggerSettings

    function = terraform.resource("aws_lambda_function", "handler")
    assert attr(function, "function_name") == "${var.name_prefix}-${each.key}"
    assert terraform.local("loader_function_name") == "${var.name_prefix}-loader"
    trigger_env = terraform.local("lambda_environment")["trigger"]
    assert trigger_env["LOADER_FUNCTION"] == "${local.loader_function_name}"
    assert terraform.variable_default("small_file_bytes") == DEFAULT_SMALL_FILE_BYTES, (
        "Terraform's small_file_bytes default and the trigger's own default must agree")
    routing = TriggerSettings.from_env(lambda_environment(terraform, "trigger")).routing
    assert routing.loader_function == "dynamo-ingest-loader"
    assert routing.small_file_bytes == DEFAULT_SMALL_FILE_BYTES
    invoke = [s for s in terraform.policy_statements("trigger")
              if "lambda:InvokeFunction" in attr(s, "actions")]
    assert [attr(s, "resources") for s in invoke] == [["${local.loader_function_arn}"]]
    assert terraform.local("loader_function_arn").endswith(
        ":function:${local.loader_function_name}")


def test_the_loader_runs_with_its_layer_two_vcpus_and_lambdas_longest_timeout(
        terraform: TerraformConfig) -> None:
    from loader_lambda.settings import Settings as LoaderSettings

    loader = terraform.local("lambdas")["loader"]
    assert loader["memory_size"] == "${var.loader_memory_mb}"
    assert terraform.variable_default("loader_memory_mb") == 3008  # 2 vCPUs
    assert terraform.variable_default("loader_timeout_seconds") == 900
    assert loader["reserved_concurrency"] == "${var.loader_reserved_concurrency}"
    function = terraform.resource("aws_lambda_function", "handler")
    assert attr(function, "layers") == "${lookup(local.lambda_layers,each.key,[])}"
    assert terraform.local("lambda_layers") == {
        "loader": ["${aws_lambda_layer_version.loader_packages.arn}"]}
    layer = terraform.resource("aws_lambda_layer_version", "loader_packages")
    assert attr(layer, "filename") == "${local.loader_layer_zip}"
    assert attr(layer, "compatible_runtimes") == ["${var.lambda_runtime}"]
    assert terraform.local("loader_layer_zip") == "${path.module}/build/loader-layer.zip"
    conditions = [attr(c, "condition") for c in
                  blocks(blocks(layer, "lifecycle")[0], "precondition")]
    # A plan without `make layer`, or for a runtime the wheels cannot run on, stops and says so.
    assert conditions == ["${fileexists(local.loader_layer_zip)}",
                          '${var.lambda_runtime != "python3.11"}']
    # Terraform's defaults are the loader's own (its settings read back what Terraform sets).
    settings = LoaderSettings.from_env(lambda_environment(terraform, "loader"))
    defaults = LoaderSettings(ledger_table="t", sns_topic_arn="a")
    assert settings.max_continuations == defaults.max_continuations
    assert settings.deadline_margin_s == defaults.deadline_margin_s
    assert settings.max_attempts == terraform.variable_default("max_attempts")


def test_loader_alarms_watch_errors_throttles_and_duration_near_the_timeout(
        terraform: TerraformConfig) -> None:
    alarm = terraform.resource("aws_cloudwatch_metric_alarm", "loader")
    assert attr(alarm, "for_each") == "${local.loader_alarms}"
    assert attr(alarm, "namespace") == "AWS/Lambda"
    assert attr(alarm, "dimensions") == {
        "FunctionName": '${aws_lambda_function.handler["loader"].function_name}'}
    assert attr(alarm, "alarm_actions") == ["${aws_sns_topic.notifications.arn}"]
    alarms = terraform.local("loader_alarms")
    assert {a["metric"] for a in alarms.values()} == {"Errors", "Throttles", "Duration"}
    assert alarms["duration"]["threshold"] == "${0.9 * var.loader_timeout_seconds * 1000}"
    assert alarms["duration"]["statistic"] == "Maximum"
