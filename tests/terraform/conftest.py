"""Fixtures of the Terraform checks: the parsed configuration, once per session."""

from __future__ import annotations

import pytest

from tests.terraform.hcl import TerraformConfig


@pytest.fixture(scope="session")
def terraform() -> TerraformConfig:
    """Every ``terraform/*.tf`` file, parsed with python-hcl2."""
    return TerraformConfig.load()
