"""checkov over ``terraform/``: no failed check, and every skip is an inline
``#checkov:skip=CKV_…:reason`` with a written reason that checkov actually applied."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.terraform.hcl import TERRAFORM_DIR

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(CKV2?_[A-Z0-9_]+)(?::(.*))?$", re.M)


def _checkov_binary() -> str | None:
    beside_python = Path(sys.executable).parent / "checkov"
    return str(beside_python) if beside_python.is_file() else shutil.which("checkov")


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """One checkov run per test module (it takes ~15 s); offline (--skip-download)."""
    binary = _checkov_binary()
    if binary is None:
        pytest.skip("checkov is not installed: `pip install checkov` (a dev dependency)")
    result = subprocess.run(
        [binary, "--directory", str(TERRAFORM_DIR), "--framework", "terraform", "--compact",
         "--skip-download", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in (0, 1), (
        f"checkov failed to run (exit {result.returncode}):\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    terraform = [r for r in reports if r.get("check_type") == "terraform"]
    assert len(terraform) == 1, f"expected one terraform report, found {len(terraform)}"
    return terraform[0]  # type: ignore[no-any-return]


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0, checkov_report["results"].get("parsing_errors")
    assert summary["resource_count"] >= 30, f"expected checkov to scan the stack, found {summary}"
    assert summary["passed"] > 100, f"expected checkov to run its AWS checks, found {summary}"
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]}): "
              f"{c['check_name']}" for c in checkov_report["results"]["failed_checks"]]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)


def test_every_skip_is_inline_with_a_reason_and_is_used(checkov_report: dict[str, Any]) -> None:
    written: set[str] = set()
    for path in sorted(TERRAFORM_DIR.glob("*.tf")):
        for match in SKIP_COMMENT.finditer(path.read_text(encoding="utf-8")):
            reason = (match.group(2) or "").strip()
            assert len(reason) >= 20, (
                f"{path.name}: #checkov:skip={match.group(1)} needs a written reason, found "
                f"{reason!r}")
            written.add(match.group(1))
    skipped = checkov_report["results"]["skipped_checks"]
    applied = {c["check_id"] for c in skipped}
    for check in skipped:
        assert check["check_result"].get("suppress_comment"), (
            f"{check['check_id']} on {check['resource']} is skipped without a reason (only "
            "inline #checkov:skip=ID:reason comments are allowed, no global skips)")
    assert applied == written, (
        f"skips written but not applied by checkov (stale or misplaced): "
        f"{sorted(written - applied)}; applied but not written inline: "
        f"{sorted(applied - written)}")
