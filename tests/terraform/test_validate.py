"""``terraform validate`` against the real AWS provider schema, where a local provider mirror
exists (``terraform init`` cannot download providers here).

The mirror has the AWS provider only, so the test validates a copy of ``terraform/`` in which
the one ``archive_file`` data source is replaced by a local of the same shape; everything else
(every AWS resource, argument and block) is validated as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest

from tests.terraform.hcl import REPO_ROOT, TERRAFORM_DIR

MIRRORS = (os.environ.get("TF_PLUGIN_DIR", ""), "/opt/tf-plugins")
# The provider talks to the moto server for the plan (data sources only; nothing is applied).
MOTO_PROVIDER = """provider "aws" {
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  endpoints {
    sts      = "ENDPOINT"
    dynamodb = "ENDPOINT"
  }
}
"""
ARCHIVE_STUB = '''locals {
  # Test stand-in for data.archive_file.package (no archive provider in the mirror).
  archive_stub = {
    for name, files in local.zip_files : name => {
      output_path         = "${path.module}/build/${name}.zip"
      output_base64sha256 = base64sha256(jsonencode(files))
      output_md5          = md5(jsonencode(files))
    }
  }
}
'''


def _mirror() -> Path | None:
    for candidate in MIRRORS:
        if candidate and (Path(candidate) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return Path(candidate)
    return None


def _copy_without_archive_provider(target: Path) -> None:
    (target / "terraform").mkdir(parents=True)
    shutil.copytree(REPO_ROOT / "crawlers", target / "crawlers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "glue_jobs", target / "glue_jobs",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for package in ("trigger_lambda", "callback_lambda", "loader_lambda"):
        shutil.copytree(REPO_ROOT / package, target / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(TERRAFORM_DIR / "zip_modules.json", target / "terraform" / "zip_modules.json")
    # `make layer` downloads wheels; the plan needs only a file to hash (its precondition).
    (target / "terraform" / "build").mkdir()
    with zipfile.ZipFile(target / "terraform" / "build" / "loader-layer.zip", "w") as layer:
        layer.writestr("python/placeholder.py", "")
    archive_block = re.compile(r'data "archive_file" "package" \{.*?\n\}\n', re.S)
    for path in TERRAFORM_DIR.glob("*.json"):  # data the configuration reads (suffixes)
        shutil.copyfile(path, target / "terraform" / path.name)
    for path in TERRAFORM_DIR.glob("*.tf"):
        text = path.read_text(encoding="utf-8")
        if path.name == "versions.tf":
            text, removed = re.subn(r"\n\s*archive = \{[^}]*\}", "", text)
            assert removed == 1, "expected the archive provider in versions.tf"
        if archive_block.search(text):
            text = archive_block.sub(ARCHIVE_STUB, text)
        text = text.replace("data.archive_file.package", "local.archive_stub")
        (target / "terraform" / path.name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def initialized(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, dict[str, str]]:
    """A copy of the stack, initialized from the local mirror: (terraform, workdir, env)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not on PATH")
    mirror = _mirror()
    if mirror is None:
        pytest.skip("no local Terraform provider mirror (TF_PLUGIN_DIR or /opt/tf-plugins): "
                    "terraform init cannot download providers here")
    root = tmp_path_factory.mktemp("stack")
    _copy_without_archive_provider(root)
    workdir = root / "terraform"
    env = {**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1",
           "TF_DATA_DIR": str(root / ".terraform")}
    init = subprocess.run(
        [binary, "init", "-backend=false", "-input=false", f"-plugin-dir={mirror}"],
        cwd=workdir, capture_output=True, text=True, timeout=300, check=False, env=env)
    assert init.returncode == 0, f"terraform init failed:\n{init.stdout}{init.stderr}"
    return binary, workdir, env


@pytest.mark.slow
def test_terraform_validate_against_the_aws_provider_schema(
        initialized: tuple[str, Path, dict[str, str]]) -> None:
    binary, workdir, env = initialized
    validate = subprocess.run([binary, "validate", "-json"], cwd=workdir, capture_output=True,
                              text=True, timeout=300, check=False, env=env)
    result = json.loads(validate.stdout)
    problems = []
    for diagnostic in result.get("diagnostics", []):
        where = diagnostic.get("range", {})
        problems.append(f"{diagnostic['severity']}: {diagnostic['summary']}: "
                        f"{diagnostic.get('detail', '')} ({where.get('filename')}:"
                        f"{where.get('start', {}).get('line')})")
    assert result["valid"], "terraform validate found:\n" + "\n".join(problems)
    assert not [p for p in problems if p.startswith("warning")], "\n".join(problems)


@pytest.mark.slow
def test_terraform_plan_evaluates_with_an_existing_table(
        initialized: tuple[str, Path, dict[str, str]], aws: str) -> None:
    """A real plan (against the moto server, for the two data sources that call AWS: the
    caller identity and the existing target table) evaluates every expression and for_each
    with values, the existing-table and sort-key branches included."""
    binary, workdir, env = initialized
    boto3.client("dynamodb").create_table(
        TableName="orders", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "order_id", "AttributeType": "S"},
                              {"AttributeName": "line", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "order_id", "KeyType": "HASH"},
                   {"AttributeName": "line", "KeyType": "RANGE"}])
    override = workdir / "moto_override.tf"
    override.write_text(MOTO_PROVIDER.replace("ENDPOINT", aws), encoding="utf-8")
    try:
        plan = subprocess.run(
            [binary, "plan", "-input=false", "-no-color", "-lock=false", "-refresh=false",
             "-var", "target_table_name=orders", "-var", "partition_key=order_id",
             "-var", "sort_key=line", "-var", "alarm_email=ops@example.com"],
            cwd=workdir, capture_output=True, text=True, timeout=300, check=False, env=env)
    finally:
        override.unlink()
    assert plan.returncode == 0, f"terraform plan failed:\n{plan.stdout[-4000:]}{plan.stderr}"
    summary = re.search(r"Plan: (\d+) to add, 0 to change, 0 to destroy", plan.stdout)
    assert summary, plan.stdout[-2000:]
    assert int(summary.group(1)) >= 45, f"expected the whole stack, found {summary.group(0)}"
    assert "# aws_dynamodb_table.target" not in plan.stdout, "an existing table is not created"
    assert "data.aws_dynamodb_table.target[0]: Read complete" in plan.stdout
    assert 'aws_sns_topic_subscription.email[0] will be created' in plan.stdout
