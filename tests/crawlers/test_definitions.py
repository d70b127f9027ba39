"""The classifier and crawler JSON that Terraform reads with ``jsondecode(file(...))``."""

from __future__ import annotations

import json
from pathlib import Path

from dynamo_ingest.core.catalog import OPEN_CSV_SERDE, glue_table_input

from crawlers.local_crawler import infer_schema, load_definitions

# Arguments of the Terraform AWS provider's aws_glue_classifier csv_classifier block.
CSV_CLASSIFIER_ARGUMENTS = {
    "allow_single_column", "contains_header", "custom_datatype_configured", "custom_datatypes",
    "delimiter", "disable_value_trimming", "header", "quote_symbol", "serde"}
SCHEMA_CHANGE_UPDATE = {"LOG", "UPDATE_IN_DATABASE"}
SCHEMA_CHANGE_DELETE = {"LOG", "DELETE_FROM_DATABASE", "DEPRECATE_IN_DATABASE"}
RECRAWL = {"CRAWL_EVERYTHING", "CRAWL_NEW_FOLDERS_ONLY", "CRAWL_EVENT_MODE"}


def test_classifier_keys_are_terraform_arguments() -> None:
    classifier, _ = load_definitions()
    assert set(classifier) - {"name_suffix"} <= CSV_CLASSIFIER_ARGUMENTS
    assert classifier["contains_header"] == "PRESENT"
    # A key-only file is a table: the job loads it, so the crawler must register it.
    assert classifier["allow_single_column"] is True
    assert classifier["disable_value_trimming"] is True
    assert len(classifier["delimiter"]) == 1
    assert len(classifier["quote_symbol"]) == 1
    assert classifier["quote_symbol"] != classifier["delimiter"]


def test_classifier_matches_what_the_local_crawler_registers(tmp_path: Path) -> None:
    classifier, _ = load_definitions()
    path = tmp_path / "sample.csv"
    path.write_text("id,name\n1,ann\n", encoding="utf-8")
    schema = infer_schema(path)
    assert (schema.delimiter, schema.quote_char) == (
        classifier["delimiter"], classifier["quote_symbol"])
    serde = glue_table_input("t", schema, "s3://b/p/")["StorageDescriptor"]["SerdeInfo"]
    assert serde["SerializationLibrary"].lower().endswith(classifier["serde"].lower())
    assert serde["SerializationLibrary"] == OPEN_CSV_SERDE


def test_crawler_policies_are_valid_together() -> None:
    _, crawler = load_definitions()
    policy = crawler["schema_change_policy"]
    assert policy["update_behavior"] in SCHEMA_CHANGE_UPDATE
    assert policy["delete_behavior"] in SCHEMA_CHANGE_DELETE
    recrawl = crawler["recrawl_policy"]["recrawl_behavior"]
    assert recrawl in RECRAWL
    if recrawl == "CRAWL_NEW_FOLDERS_ONLY":  # Glue refuses it unless both behaviours are LOG
        assert policy == {"update_behavior": "LOG", "delete_behavior": "LOG"}
    # The job matches file headers to the catalog exactly: the table must follow the sample.
    assert policy["update_behavior"] == "UPDATE_IN_DATABASE"
    # An emptied sample folder must not drop the table running jobs depend on.
    assert policy["delete_behavior"] == "LOG"


def test_crawler_target_schedule_and_configuration() -> None:
    _, crawler = load_definitions()
    suffix = crawler["s3_target"]["path_suffix"]
    assert suffix.endswith("/")
    assert not suffix.startswith("/")
    assert suffix not in {"incoming/", "complete/", "error/"}
    assert isinstance(crawler["s3_target"]["exclusions"], list)
    sample_size = crawler["s3_target"]["sample_size"]
    assert sample_size is None or 1 <= sample_size <= 249
    assert isinstance(crawler["table_prefix"], str)
    assert crawler["schedule"] is None or crawler["schedule"].startswith("cron(")
    configuration = crawler["configuration"]
    assert configuration["Version"] == 1.0
    assert configuration["Grouping"]["TableGroupingPolicy"] == "CombineCompatibleSchemas"
    assert json.loads(json.dumps(configuration)) == configuration  # jsonencode()-able


def test_definition_files_ship_with_the_package() -> None:
    folder = Path(__file__).resolve().parents[2] / "crawlers"
    classifier, crawler = load_definitions()
    assert json.loads((folder / "csv_classifier.json").read_text(encoding="utf-8")) == classifier
    assert json.loads((folder / "crawler.json").read_text(encoding="utf-8")) == crawler
