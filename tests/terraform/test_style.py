"""``terraform fmt``, and the conventions a reviewer would otherwise check by hand: versions
pinned, every variable typed and described, nothing account- or region-specific hard-coded."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.terraform.hcl import TERRAFORM_DIR, TerraformConfig, attr, blocks


def test_terraform_fmt_check_passes() -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip("the terraform binary is not on PATH: install Terraform >= 1.5 to run "
                    "`terraform fmt -check -recursive terraform/`")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR)],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"})
    assert result.returncode == 0, (
        "terraform fmt -check expected formatted files, found differences (run "
        f"`terraform fmt -recursive terraform/`):\n{result.stdout}{result.stderr}")


def test_versions_are_pinned(terraform: TerraformConfig) -> None:
    text = terraform.raw_text["versions.tf"]
    assert re.search(r'required_version\s*=\s*">=\s*1\.5"', text), "expected Terraform >= 1.5"
    assert re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"~>\s*5\.', text), (
        "expected the AWS provider pinned to ~> 5.x")


def test_every_variable_is_typed_and_described(terraform: TerraformConfig) -> None:
    assert terraform.variables, "expected variables in terraform/variables.tf"
    untyped = [name for name, body in terraform.variables.items() if "type" not in body]
    undescribed = [name for name, body in terraform.variables.items()
                   if len(str(body.get("description", [""])[0])) < 10]
    assert not untyped, f"expected a type on every variable, found none on {untyped}"
    assert not undescribed, f"expected a description on every variable, found none on {undescribed}"


def test_nothing_account_or_region_specific_is_hard_coded(terraform: TerraformConfig) -> None:
    for name, text in terraform.raw_text.items():
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        assert not re.search(r"\b\d{12}\b", code), f"{name}: expected no account id, found one"
        assert not re.search(r"\b(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d\b", code), (
            f"{name}: expected no region name, found one (use data.aws_region)")
        assert not re.search(r"^\s*(profile|access_key|secret_key)\s*=", code, re.M), (
            f"{name}: expected no profile or keys in the provider, found one")
    provider = terraform.raw_text["versions.tf"]
    assert "region" not in provider.split('provider "aws"', 1)[1], (
        "expected the provider's region to come from the environment")


def test_lambda_and_glue_sizes_come_from_variables(terraform: TerraformConfig) -> None:
    job = terraform.resource("aws_glue_job", "load_csv")
    assert attr(job, "worker_type") == "${var.glue_worker_type}"
    assert attr(job, "number_of_workers") == "${var.glue_number_of_workers}"
    assert attr(job, "timeout") == "${var.glue_timeout_minutes}"
    concurrency = attr(blocks(job, "execution_property")[0], "max_concurrent_runs")
    assert concurrency == "${var.glue_max_concurrent_runs}"
