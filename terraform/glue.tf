resource "aws_glue_catalog_database" "this" {
  name        = local.catalog_database
  description = "CSV layouts registered by the ${var.name_prefix} crawler; the load job reads its table."
}

# The classifier and the crawler are defined as data in crawlers/*.json, which the local crawl
# reads too, so both register the same table.
resource "aws_glue_classifier" "csv" {
  name = "${var.name_prefix}-${local.classifier_definition.name_suffix}"

  csv_classifier {
    delimiter              = local.classifier_definition.delimiter
    quote_symbol           = local.classifier_definition.quote_symbol
    contains_header        = local.classifier_definition.contains_header
    disable_value_trimming = local.classifier_definition.disable_value_trimming
    allow_single_column    = local.classifier_definition.allow_single_column
    serde                  = local.classifier_definition.serde
  }
}

# Run on demand (or on the schedule in crawler.json) when a dataset's layout is new or has
# changed: upload one sample file to the crawled folder and start the crawler.
resource "aws_glue_crawler" "schema" {
  name                   = "${var.name_prefix}-${local.crawler_definition.name_suffix}"
  database_name          = aws_glue_catalog_database.this.name
  role                   = aws_iam_role.crawler.arn
  classifiers            = [aws_glue_classifier.csv.name]
  table_prefix           = local.crawler_definition.table_prefix
  schedule               = local.crawler_definition.schedule
  security_configuration = aws_glue_security_configuration.this.name
  configuration          = jsonencode(local.crawler_definition.configuration)

  s3_target {
    path        = local.crawler_path
    exclusions  = local.crawler_definition.s3_target.exclusions
    sample_size = local.crawler_definition.s3_target.sample_size
  }

  schema_change_policy {
    update_behavior = local.crawler_definition.schema_change_policy.update_behavior
    delete_behavior = local.crawler_definition.schema_change_policy.delete_behavior
  }

  recrawl_policy {
    recrawl_behavior = local.crawler_definition.recrawl_policy.recrawl_behavior
  }
}

# Encryption of what Glue itself writes: S3 output through Spark with the stack's key, and
# bookmarks (unused: the job resumes from its own checkpoints).
resource "aws_glue_security_configuration" "this" {
  # Glue's CloudWatch encryption mode renames the job's log groups after the role and this
  # configuration and makes Glue associate the key with them itself; instead the log groups
  # are created up front (logs.tf) and encrypted with the same key by CloudWatch Logs.
  #checkov:skip=CKV_AWS_99:CloudWatch logs are encrypted at the log-group level with the stack's key (logs.tf)
  name = "${var.name_prefix}-encryption"

  encryption_configuration {
    cloudwatch_encryption {
      cloudwatch_encryption_mode = "DISABLED"
    }

    job_bookmarks_encryption {
      job_bookmarks_encryption_mode = "CSE-KMS"
      kms_key_arn                   = aws_kms_key.main.arn
    }

    s3_encryption {
      s3_encryption_mode = "SSE-KMS"
      kms_key_arn        = aws_kms_key.main.arn
    }
  }
}

locals {
  # Defaults for a run started by hand; the trigger and the callback pass the per-file ones
  # (--source_path, --source_etag, --rejects_path, …) with every StartJobRun. The names are
  # JobArguments fields (glue_jobs/dynamo_ingest/core/arguments.py); tests/terraform checks it.
  job_default_arguments = {
    "--target_table"     = var.target_table_name
    "--partition_key"    = var.partition_key
    "--catalog_database" = local.catalog_database
    "--catalog_table"    = local.catalog_table
    "--ledger_table"     = local.ledger_table_name
    "--write_rate"       = var.write_rate
    "--write_share"      = tostring(var.write_share)
    # The folders the trigger and the callback use, so a manual run's default rejects file
    # lands in the same error/ place (dynamo_ingest/control/locations.py), outside incoming/.
    "--incoming_prefix" = var.incoming_prefix
    "--error_prefix"    = var.error_prefix
  }
  job_sort_key_argument = var.sort_key == null ? {} : { "--sort_key" = var.sort_key }

  # Glue's own arguments. No --enable-glue-datacatalog: the job reads its table with
  # glue:GetTable and never uses Spark SQL's metastore, which would need catalog-wide access.
  glue_default_arguments = {
    "--job-language"                     = "python"
    "--extra-py-files"                   = "s3://${aws_s3_object.glue_library.bucket}/${aws_s3_object.glue_library.key}"
    "--TempDir"                          = "s3://${aws_s3_bucket.data.id}/${local.glue_temp_prefix}"
    "--enable-metrics"                   = "true"
    "--enable-continuous-cloudwatch-log" = "true"
    "--custom-logGroup-prefix"           = local.glue_log_group_prefix
    # The job resumes from its own checkpoints in the ledger; Glue bookmarks track files, not
    # rows, and do not work in the local Glue image.
    "--job-bookmark-option" = "job-bookmark-disable"
    # zstd input: Glue 5 has no zstd codec for Python, and Hadoop's needs native code;
    # orjson writes the BatchWriteItem bodies at a fraction of json's CPU (tools/zip_modules.py
    # holds this list to what the job's code imports).
    "--additional-python-modules" = "zstandard==0.25.0,orjson==3.13.0"
  }
}

resource "aws_glue_job" "load_csv" {
  name              = local.glue_job_name
  description       = "Load one CSV file from S3 into DynamoDB (dynamo-ingest)."
  role_arn          = aws_iam_role.glue_job.arn
  glue_version      = "5.0"
  worker_type       = var.glue_worker_type
  number_of_workers = var.glue_number_of_workers
  timeout           = var.glue_timeout_minutes
  # Glue must not retry by itself: a Glue retry starts the load from the beginning, while the
  # callback Lambda resumes a failed run from its checkpoints, up to max_attempts, and keeps
  # the ledger's attempt count right.
  max_retries            = 0
  security_configuration = aws_glue_security_configuration.this.name

  command {
    name            = "glueetl"
    script_location = "s3://${aws_s3_object.glue_script.bucket}/${aws_s3_object.glue_script.key}"
    python_version  = "3"
  }

  default_arguments = merge(local.glue_default_arguments, local.job_default_arguments, local.job_sort_key_argument)

  execution_property {
    max_concurrent_runs = var.glue_max_concurrent_runs
  }

  depends_on = [aws_cloudwatch_log_group.this]
}
