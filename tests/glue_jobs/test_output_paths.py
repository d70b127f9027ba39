"""The run's own output files checked before a load starts (control/output_paths.py)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dynamo_ingest.control.output_paths import refuse_unwritable_outputs
from dynamo_ingest.core.arguments import JobArguments
from dynamo_ingest.core.errors import ArgumentError


@pytest.fixture
def immutable_file(tmp_path: Path) -> Iterator[Path]:
    """An existing file with the immutable attribute (root can write its mode bits away, not
    this); skipped where chattr is missing or the file system has no such attribute."""
    path = tmp_path / "rejects.csv"
    path.write_text("an earlier run's rejects\n", encoding="utf-8")
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("chattr is not installed: the immutable attribute cannot be set here")
    done = subprocess.run([chattr, "+i", str(path)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is refused here ({done.stderr.strip()}): not root, or the file "
                    "system has no immutable attribute")
    try:
        yield path
    finally:
        subprocess.run([chattr, "-i", str(path)], check=False)


@pytest.mark.parametrize("option", ["report_path", "rejects_path"])
def test_an_immutable_existing_output_file_is_refused_before_loading(
        immutable_file: Path, option: str) -> None:
    args = JobArguments(source_path="x.csv", target_table="t", **{option: str(immutable_file)})
    with pytest.raises(ArgumentError, match=f"--{option} .*immutable or append-only file"):
        refuse_unwritable_outputs(args)


def test_an_existing_plain_output_file_is_accepted(tmp_path: Path) -> None:
    existing = tmp_path / "report.json"
    existing.write_text("{}\n", encoding="utf-8")
    refuse_unwritable_outputs(JobArguments(source_path="x.csv", target_table="t",
                                           report_path=str(existing),
                                           rejects_path=str(tmp_path / "rejects.csv")))
