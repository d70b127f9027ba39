"""Build the loader function's layer: ``make layer`` → ``terraform/build/loader-layer.zip``.

The layer holds the third-party packages the loader imports and Lambda's runtime lacks (the
``layers`` of ``terraform/zip_modules.json``), at the versions the test suite ran with,
installed as Linux x86_64 wheels for the function's Python (``--python``, the minor version
of ``var.lambda_runtime``) under ``python/``, where Lambda puts layers on ``sys.path``. What
no import reaches (the packages' tests, C headers, Cython sources, byte code) is left out.

Lambda's limits (Lambda quotas): a zip uploaded directly is at most 50 MB, and a function's
code and layers together at most 250 MB unzipped; the build fails when either would be passed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable
from pathlib import Path

from tools.zip_modules import OUTPUT, REPO_ROOT, layer_requirements

LAYER_ZIP = REPO_ROOT / "terraform" / "build" / "loader-layer.zip"
BUILD_DIR = REPO_ROOT / "build" / "layer"
ZIPPED_LIMIT = 50 * 1000 * 1000
UNZIPPED_LIMIT = 250 * 1000 * 1000
# pyarrow 18+ publishes manylinux_2_28 wheels only; Lambda's python3.12+ runtimes (Amazon
# Linux 2023, glibc 2.34) run them.
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_28_x86_64")
# Never imported by the engine: the packages' own tests and byte code, and the headers and
# sources for building against them.
LEFT_OUT_DIRS = frozenset({"tests", "__pycache__"})
LEFT_OUT_SUFFIXES = (".pyc", ".pyx", ".pxd", ".pxi", ".h", ".hpp", ".cc", ".cpp")
# A zip has fixed timestamps so that the same packages give the same layer hash.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


class LayerTooBigError(Exception):
    """The layer would pass one of Lambda's size limits."""


def shipped_files(site: Path) -> list[Path]:
    """The installed files that go into the layer, sorted."""
    kept = []
    for path in sorted(site.rglob("*")):
        relative = path.relative_to(site)
        if path.is_dir() or any(part in LEFT_OUT_DIRS for part in relative.parts[:-1]):
            continue
        if path.suffix in LEFT_OUT_SUFFIXES:
            continue
        kept.append(path)
    return kept


def write_zip(site: Path, files: Iterable[Path], destination: Path) -> int:
    """Write the files under ``python/`` into ``destination``; returns their unzipped bytes."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    unzipped = 0
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in files:
            info = zipfile.ZipInfo(f"python/{path.relative_to(site).as_posix()}", ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (path.stat().st_mode & 0o777) << 16
            data = path.read_bytes()
            unzipped += len(data)
            archive.writestr(info, data)
    return unzipped


def check_limits(zipped: int, unzipped: int, function_code: int) -> None:
    """:class:`LayerTooBigError` when the layer passes Lambda's direct-upload or unzipped
    limit (the function's own code counts towards the latter)."""
    if zipped > ZIPPED_LIMIT:
        raise LayerTooBigError(
            f"the layer zip is {zipped / 1e6:.1f} MB, over Lambda's {ZIPPED_LIMIT / 1e6:.0f} MB "
            "for a direct upload; drop a package from the loader's imports or upload it via S3")
    if unzipped + function_code > UNZIPPED_LIMIT:
        raise LayerTooBigError(
            f"the layer ({unzipped / 1e6:.1f} MB) and the loader's code "
            f"({function_code / 1e6:.1f} MB) unzip to more than Lambda's "
            f"{UNZIPPED_LIMIT / 1e6:.0f} MB; drop a package from the loader's imports")


def _install(requirements: list[str], python: str, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--only-binary=:all:",
               "--implementation", "cp", "--python-version", python, "--target", str(target),
               *(f"--platform={platform}" for platform in PLATFORMS), *requirements]
    subprocess.run(command, check=True)


def _function_code_bytes(content: dict[str, dict[str, dict[str, str]]]) -> int:
    return sum((REPO_ROOT / source).stat().st_size
               for source in content["zips"]["loader"].values())


def main(argv: list[str] | None = None) -> int:
    """Install, trim, zip and size-check the loader's layer."""
    parser = argparse.ArgumentParser(prog="python -m tools.layer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="3.12",
                        help="the Python of var.lambda_runtime (default 3.12)")
    options = parser.parse_args(argv)
    content = json.loads(OUTPUT.read_text(encoding="utf-8"))
    requirements = layer_requirements("loader", content)
    site = BUILD_DIR / "python"
    _install(requirements, options.python, site)
    unzipped = write_zip(site, shipped_files(site), LAYER_ZIP)
    zipped = LAYER_ZIP.stat().st_size
    check_limits(zipped, unzipped, _function_code_bytes(content))
    print(f"wrote {LAYER_ZIP.relative_to(REPO_ROOT)}: {' '.join(requirements)} for Python "
          f"{options.python}, {zipped / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
