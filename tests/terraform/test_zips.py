"""Each deployable ships exactly what it imports: ``terraform/zip_modules.json`` is what
``tools/zip_modules.py`` derives from the code now, Terraform builds the zips from it, an
independent ``ast`` walk of the imports agrees with it, and no Lambda zip holds Spark."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.terraform import code_calls
from tests.terraform.hcl import REPO_ROOT, TerraformConfig, attr
from tools import zip_modules

LAMBDA_ZIPS = ("trigger", "callback", "loader")
GLUE_SCRIPT = REPO_ROOT / "glue_jobs" / "load_csv_to_dynamodb.py"
# Where each zip's entry point lives, for the independent closure below.
ZIP_STARTS = {
    "trigger": [REPO_ROOT / "trigger_lambda" / "handler.py"],
    "callback": [REPO_ROOT / "callback_lambda" / "handler.py"],
    "loader": [REPO_ROOT / "loader_lambda" / "handler.py"],
    "glue_library": [GLUE_SCRIPT],
}


@pytest.fixture(scope="module")
def graph() -> Any:
    """The first-party import graph (grimp), once for the module."""
    return zip_modules.build_graph()


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    """The committed ``terraform/zip_modules.json``."""
    import json

    return json.loads(zip_modules.OUTPUT.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_zip_modules_json_is_what_the_code_imports_now(graph: Any) -> None:
    current = zip_modules.OUTPUT.read_text(encoding="utf-8")
    derived = zip_modules.render(zip_modules.describe(graph))
    assert current == derived, (
        "terraform/zip_modules.json no longer matches the code's imports: run `make zips` "
        "and commit the file")


@pytest.mark.parametrize("zip_name", sorted(ZIP_STARTS))
def test_each_zip_holds_exactly_the_modules_an_ast_walk_of_its_imports_finds(
        committed: dict[str, Any], zip_name: str) -> None:
    """grimp (the generator) and code_calls' own ``ast`` walk (the IAM analysis) agree."""
    walked = code_calls.first_party_closure(ZIP_STARTS[zip_name]) - {GLUE_SCRIPT.resolve()}
    expected = {str(path.relative_to(REPO_ROOT)) for path in walked}
    shipped = {source for source in committed["zips"][zip_name].values()
               if source.endswith(".py")}
    assert shipped == expected, (
        f"{zip_name}: ships {sorted(shipped - expected)} that no import reaches and lacks "
        f"{sorted(expected - shipped)} that the code imports")


@pytest.mark.parametrize("zip_name", LAMBDA_ZIPS)
def test_no_lambda_zip_ships_a_module_that_imports_spark(
        graph: Any, committed: dict[str, Any], zip_name: str) -> None:
    spark = {"pyspark", "awsglue", "py4j"}
    offenders = {}
    for inside in committed["zips"][zip_name]:
        if not inside.endswith(".py"):
            continue
        module = inside.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        found = {m.split(".")[0] for m in graph.find_modules_directly_imported_by(module)} & spark
        if found:
            offenders[module] = sorted(found)
    assert not offenders, f"{zip_name}: modules importing Spark, which no Lambda has: {offenders}"
    assert not [f for f in committed["zips"][zip_name]
                if f.startswith("dynamo_ingest/spark/") or f == "dynamo_ingest/job.py"]


def test_the_loader_ships_the_in_process_engine_and_no_spark_layer(
        committed: dict[str, Any]) -> None:
    loader = set(committed["zips"]["loader"])
    assert "dynamo_ingest/engine/local.py" in loader
    assert not {f for f in loader if f.startswith("dynamo_ingest/spark/")}
    # The trigger and the callback start and finish loads: no engine at all.
    for name in ("trigger", "callback"):
        assert not {f for f in committed["zips"][name] if f.startswith("dynamo_ingest/engine/")}


def test_imports_inside_functions_and_package_data_are_shipped(
        committed: dict[str, Any]) -> None:
    """``load.py`` imports the local crawler inside a function, and the crawler reads its JSON
    definitions with importlib.resources: both must be in the Glue library zip."""
    assert "from crawlers.local_crawler import infer_schema" in (
        REPO_ROOT / "glue_jobs" / "dynamo_ingest" / "load.py").read_text(encoding="utf-8")
    glue = committed["zips"]["glue_library"]
    assert glue["crawlers/local_crawler.py"] == "crawlers/local_crawler.py"
    assert {"crawlers/crawler.json", "crawlers/csv_classifier.json"} <= set(glue)
    assert glue["dynamo_ingest/job.py"] == "glue_jobs/dynamo_ingest/job.py"


@pytest.mark.parametrize("zip_name", sorted(ZIP_STARTS))
def test_third_party_imports_are_the_runtimes_or_the_layers(
        committed: dict[str, Any], zip_name: str) -> None:
    files = code_calls.first_party_closure(ZIP_STARTS[zip_name])
    imported = set(code_calls.third_party_imports(files))
    deployable = zip_modules.DEPLOYABLES[zip_name]
    layer = {name.lower() for name in committed["layers"].get(zip_name, [])}
    not_needed = set(zip_modules.GLUE_NOT_NEEDED) if deployable.runtime == "glue" else set()
    lacking = imported - deployable.provided - layer - not_needed
    assert not lacking, (
        f"{zip_name}: imports {sorted(lacking)}, which neither its runtime nor a layer has")


def test_layer_packages_are_project_dependencies(committed: dict[str, Any]) -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        dependencies = tomllib.load(handle)["project"]["dependencies"]
    declared = {dep.split(">")[0].split("=")[0].split("<")[0].strip().lower()
                for dep in dependencies}
    layer = committed["layers"]["loader"]
    assert layer, "expected the loader to need packages Lambda lacks (xxhash at least)"
    assert {name.lower() for name in layer} <= declared, (
        f"layer packages {layer} must be pinned project dependencies ({sorted(declared)})")


def test_terraform_builds_every_zip_from_the_json(terraform: TerraformConfig,
                                                  committed: dict[str, Any]) -> None:
    assert terraform.local("zip_modules") == (
        '${jsondecode(file("${path.module}/zip_modules.json"))}')
    archive = terraform.data_source("archive_file", "package")
    assert attr(archive, "for_each") == "${local.zip_files}"
    assert "fileset(" not in terraform.raw_text["locals.tf"], (
        "a zip ships the files the code imports, not a folder's every file")
    assert set(terraform.local("lambdas")) <= set(committed["zips"]), (
        "every function needs a zip in terraform/zip_modules.json")
    assert set(committed["zips"]) == set(zip_modules.DEPLOYABLES)
    for zip_name, files in committed["zips"].items():
        for inside, source in files.items():
            assert (REPO_ROOT / source).is_file(), f"{zip_name}: {source} does not exist"
            # Python imports a package from the top of the zip.
            assert inside.split("/")[0] in zip_modules.FIRST_PARTY
    library = terraform.resource("aws_s3_object", "glue_library")
    assert attr(library, "source") == '${data.archive_file.package["glue_library"].output_path}'


def test_the_generator_refuses_a_lambda_that_imports_spark(graph: Any) -> None:
    """A Lambda whose entry reaches the job (which imports Spark) is refused by name."""
    deployables = {"bad": zip_modules.Deployable(entries=("dynamo_ingest.job",))}
    original = zip_modules.DEPLOYABLES
    zip_modules.DEPLOYABLES = deployables
    try:
        with pytest.raises(zip_modules.ZipModulesError,
                           match=r"bad: imports \['awsglue', 'py4j', 'pyspark'\], which no Lambda"):
            zip_modules.describe(graph)
    finally:
        zip_modules.DEPLOYABLES = original


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "zip_modules.json"
    stale.write_text(zip_modules.OUTPUT.read_text(encoding="utf-8").replace(
        '"trigger_lambda/service.py"', '"trigger_lambda/gone.py"', 1), encoding="utf-8")
    monkeypatch.setattr(zip_modules, "OUTPUT", stale)
    assert zip_modules.main(["--check"]) == 1
    assert "is stale: run `make zips`" in capsys.readouterr().err
