"""Every AWS call each component's code makes has its IAM action in that component's role, the
role grants nothing else besides documented runtime needs, and no policy uses wildcards.

The calls are derived from the code (see ``code_calls``): the component's files and the
first-party modules they import, the functions reachable from its entry point, and the
methods that are operations of the services it uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.terraform import code_calls
from tests.terraform.hcl import (
    REPO_ROOT,
    TerraformConfig,
    attr,
    statement_actions,
    statement_effect,
    statement_resources,
    statement_sid,
)


@dataclass(frozen=True)
class Component:
    """A deployed piece of code, the policy document of its role, and its entry points."""

    start: tuple[Path, ...]
    entry_points: frozenset[str]
    policy_document: str
    # Actions the role needs although no line of our code calls them: what the AWS runtime
    # does with the role (logs, failed-event delivery, reading the job's script, metrics, KMS
    # for encrypted resources), each with the reason.
    runtime_actions: dict[str, str] = field(default_factory=dict)
    # Functions the entry point reaches but that never run in AWS, each with the reason.
    not_run_in_aws: dict[str, str] = field(default_factory=dict)


LAMBDA_RUNTIME = {
    "logs:CreateLogStream": "Lambda writes the function's logs to its log group",
    "logs:PutLogEvents": "Lambda writes the function's logs to its log group",
    "sqs:SendMessage": "Lambda sends failed asynchronous events to the on-failure destination",
    "kms:Decrypt": "the environment, the ledger and the topic are encrypted with the stack's key",
    "kms:Encrypt": "DynamoDB encrypts ledger items with the stack's key on the caller's behalf",
    "kms:GenerateDataKey": "SNS/S3/DynamoDB encrypt with the stack's key on the caller's behalf",
    "kms:DescribeKey": "DynamoDB checks the table's key on the caller's behalf",
}
COMPONENTS = {
    "trigger": Component(
        start=tuple(sorted((REPO_ROOT / "trigger_lambda").glob("*.py"))),
        entry_points=frozenset({"handler"}), policy_document="trigger",
        runtime_actions=LAMBDA_RUNTIME),
    "callback": Component(
        start=tuple(sorted((REPO_ROOT / "callback_lambda").glob("*.py"))),
        entry_points=frozenset({"handler"}), policy_document="callback",
        runtime_actions=LAMBDA_RUNTIME),
    "loader": Component(
        start=tuple(sorted((REPO_ROOT / "loader_lambda").glob("*.py"))),
        entry_points=frozenset({"handler"}), policy_document="loader",
        runtime_actions=LAMBDA_RUNTIME,
        not_run_in_aws={
            "Ledger.ensure_table": "runs only against an emulator (LedgerSession.open("
                                   "create=aws.is_emulated)); in AWS Terraform creates the "
                                   "ledger table",
        }),
    "glue_job": Component(
        start=(REPO_ROOT / "glue_jobs" / "load_csv_to_dynamodb.py",),
        entry_points=frozenset({"main"}), policy_document="glue_job",
        runtime_actions={
            "s3:ListBucket": "Spark's S3 file system lists the source's prefix",
            "logs:CreateLogGroup": "Glue 5 creates the job's log groups if missing",
            "logs:CreateLogStream": "Glue writes the run's logs",
            "logs:PutLogEvents": "Glue writes the run's logs",
            "cloudwatch:PutMetricData": "--enable-metrics",
            "kms:Decrypt": "bucket and ledger are encrypted with the stack's key",
            "kms:Encrypt": "DynamoDB encrypts items with the table's key on the caller's behalf",
            "kms:GenerateDataKey": "S3 and DynamoDB encrypt with the stack's key",
            "kms:DescribeKey": "DynamoDB checks the table's key on the caller's behalf",
        },
        not_run_in_aws={
            "Ledger.ensure_table": "runs only against an emulator (LedgerSession.open("
                                   "create=aws.is_emulated)); in AWS Terraform creates the "
                                   "ledger table",
        }),
}
# Which table a DynamoDB call uses: the ledger module's calls go to the ledger, every other
# module's to the target table.
LEDGER_MODULE = REPO_ROOT / "glue_jobs" / "dynamo_ingest" / "control" / "ledger.py"
TABLE_ARNS = {"ledger": "${local.ledger_arn}", "target": "${local.target_table_arn}"}
# "*" as a resource only where AWS offers nothing narrower: PutMetricData has no resource
# types (Service Authorization Reference), and in a key policy "*" means the key itself.
STAR_RESOURCE_ALLOWED = {
    ("glue_job", "PublishJobMetrics"),
    ("kms", "AccountAdministersKeyAndDelegatesUseToIam"),
    ("kms", "CloudWatchLogsEncryptsThisStacksLogGroups"),
    ("kms", "CloudWatchAlarmsPublishToEncryptedTopic"),
}


def derived_calls(component: Component) -> list[list[code_calls.AwsCall]]:
    """The AWS call sites of a component's code that runs in AWS."""
    files = code_calls.first_party_closure(component.start)
    services = code_calls.services_used(files)
    sites = code_calls.aws_calls(files, services, set(component.entry_points))
    return [site for site in sites if site[0].function not in component.not_run_in_aws]


def grants(terraform: TerraformConfig, component: Component) -> dict[str, set[str]]:
    """Action → the resources the component's role allows it on."""
    allowed: dict[str, set[str]] = {}
    for statement in terraform.policy_statements(component.policy_document):
        if statement_effect(statement) != "Allow":
            continue
        for action in statement_actions(statement):
            allowed.setdefault(action, set()).update(statement_resources(statement))
    return allowed


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_aws_call_of_the_code_is_allowed(terraform: TerraformConfig, name: str) -> None:
    component = COMPONENTS[name]
    sites = derived_calls(component)
    assert sites, f"{name}: expected the code to call AWS, found no call (is the analysis broken?)"
    allowed = grants(terraform, component)
    missing: list[str] = []
    for alternatives in sites:
        if any(call.actions <= set(allowed) for call in alternatives):
            call = next(c for c in alternatives if c.actions <= set(allowed))
            if call.service == "dynamodb":
                table = "ledger" if call.path == LEDGER_MODULE else "target"
                lacking = {a for a in call.actions if TABLE_ARNS[table] not in allowed[a]}
                if lacking:
                    missing.append(f"{call.where()} {call.receiver}.{call.method}() uses the "
                                   f"{table} table: {sorted(lacking)} not allowed on "
                                   f"{TABLE_ARNS[table]}")
            continue
        call = alternatives[0]
        missing.append(f"{call.where()} {call.receiver}.{call.method}() needs "
                       f"{sorted(call.actions - set(allowed))}")
    assert not missing, f"{name}: the role lacks actions the code calls:\n" + "\n".join(missing)


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_roles_grant_nothing_the_code_does_not_call(terraform: TerraformConfig, name: str) -> None:
    component = COMPONENTS[name]
    derived = {action for alternatives in derived_calls(component) for call in alternatives
               for action in call.actions}
    extra = set(grants(terraform, component)) - derived - set(component.runtime_actions)
    assert not extra, (f"{name}: the role grants {sorted(extra)}, which no reachable code calls "
                       "and no documented runtime need explains")


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_functions_said_not_to_run_in_aws_are_still_there(name: str) -> None:
    component = COMPONENTS[name]
    files = code_calls.first_party_closure(component.start)
    reached = {f"{f.owner}.{f.name}" if f.owner else f.name
               for f in code_calls.reachable_functions(files, set(component.entry_points))}
    stale = set(component.not_run_in_aws) - reached
    assert not stale, f"{name}: {sorted(stale)} are no longer reached; drop them from the list"


def test_each_role_carries_its_component_policy(terraform: TerraformConfig) -> None:
    assert terraform.local("lambda_policies") == {
        "trigger": "${data.aws_iam_policy_document.trigger.json}",
        "callback": "${data.aws_iam_policy_document.callback.json}",
        "loader": "${data.aws_iam_policy_document.loader.json}",
    }
    assert set(terraform.local("lambda_policies")) == set(terraform.local("lambdas"))
    lambda_policy = terraform.resource("aws_iam_role_policy", "lambda")
    assert attr(lambda_policy, "policy") == "${local.lambda_policies[each.key]}"
    assert attr(lambda_policy, "role") == "${aws_iam_role.lambda[each.key].id}"
    function = terraform.resource("aws_lambda_function", "handler")
    assert attr(function, "role") == "${aws_iam_role.lambda[each.key].arn}"
    for name in ("glue_job", "crawler"):
        policy = terraform.resource("aws_iam_role_policy", name)
        assert attr(policy, "policy") == f"${{data.aws_iam_policy_document.{name}.json}}"
        assert attr(policy, "role") == f"${{aws_iam_role.{name}.id}}"
    assert attr(terraform.resource("aws_glue_job", "load_csv"), "role_arn") == (
        "${aws_iam_role.glue_job.arn}")
    assert attr(terraform.resource("aws_glue_crawler", "schema"), "role") == (
        "${aws_iam_role.crawler.arn}")
    # Inline role policies only: no managed policy (AWSGlueServiceRole and friends grant "*").
    assert "aws_iam_role_policy_attachment" not in terraform.resources


def test_no_policy_allows_a_wildcard_action_or_resource(terraform: TerraformConfig) -> None:
    problems: list[str] = []
    used_star_resources: set[tuple[str, str]] = set()
    for document, body in terraform.all_policy_documents().items():
        for statement in terraform.policy_statements(document):
            sid = statement_sid(statement)
            where = f"{document}/{sid or '(no sid)'}"
            if not sid:
                problems.append(f"{where}: every statement needs a sid saying what it is for")
            actions = statement_actions(statement)
            if statement_effect(statement) == "Allow":
                problems += [f"{where}: wildcard action {a!r}" for a in actions if "*" in a]
            elif any("*" in a for a in actions):
                # Deny-all statements (TLS only) are meant to be exhaustive.
                resources = statement_resources(statement)
                if "*" in resources:
                    problems.append(f"{where}: deny with wildcard action and resource '*'")
            if statement_effect(statement) == "Allow":
                problems += [f"{where}: {r!r} is every object of the bucket; name a folder"
                             for r in statement_resources(statement)
                             if re.search(r"(bucket_arn|aws_s3_bucket\.data\.arn)\}/\*$", r)]
            if "*" in statement_resources(statement) and statement_effect(statement) == "Allow":
                if (document, sid) in STAR_RESOURCE_ALLOWED:
                    used_star_resources.add((document, sid))
                else:
                    problems.append(f"{where}: resource '*' (not in the documented allow-list)")
        assert body
    assert not problems, "\n".join(problems)
    assert used_star_resources == STAR_RESOURCE_ALLOWED, (
        f"allow-list entries {sorted(STAR_RESOURCE_ALLOWED - used_star_resources)} are stale")


def test_policies_are_policy_documents_not_inline_json(terraform: TerraformConfig) -> None:
    for type_name, named in terraform.resources.items():
        for name, body in named.items():
            for key in ("policy", "assume_role_policy", "policy_document"):
                if key in body:
                    value = attr(body, key)
                    assert value.startswith(("${data.aws_iam_policy_document.",
                                             "${local.lambda_policies")), (
                        f"{type_name}.{name}.{key} should come from an aws_iam_policy_document, "
                        f"found {value[:80]!r}")
