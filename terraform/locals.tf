data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition
  repo_root  = "${path.module}/.."

  bucket_name = coalesce(var.bucket_name, "${var.name_prefix}-${local.account_id}-${local.region}")
  bucket_arn  = "arn:${local.partition}:s3:::${local.bucket_name}"

  file_prefixes = [var.incoming_prefix, var.complete_prefix, var.error_prefix]
  # The object-key suffixes that start a load: dynamo_ingest.core.formats, as S3 filters.
  incoming_suffixes = jsondecode(file("${path.module}/incoming_suffixes.json")).filter_suffixes
  # Folders of the bucket besides incoming/, complete/ and error/.
  glue_assets_prefix = "glue/assets/"
  glue_temp_prefix   = "glue/temp/"

  glue_job_name     = "${var.name_prefix}-load"
  glue_job_arn      = "arn:${local.partition}:glue:${local.region}:${local.account_id}:job/${local.glue_job_name}"
  ledger_table_name = coalesce(var.ledger_table_name, "${var.name_prefix}-ledger")
  catalog_database  = coalesce(var.catalog_database_name, replace(var.name_prefix, "-", "_"))
  sns_topic_name    = "${var.name_prefix}-notifications"

  # Named here, not taken from the function resource: the trigger's environment (a function of
  # the same for_each) names it, and the trigger's and the loader's roles allow invoking it.
  loader_function_name = "${var.name_prefix}-loader"
  loader_function_arn  = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.loader_function_name}"

  # The crawler and classifier are data shared with the local crawl (crawlers/*.json).
  crawler_definition    = jsondecode(file("${local.repo_root}/crawlers/crawler.json"))
  classifier_definition = jsondecode(file("${local.repo_root}/crawlers/csv_classifier.json"))
  crawler_path          = "s3://${local.bucket_name}/${local.crawler_definition.s3_target.path_suffix}"
  # A crawler names the table after the crawled folder (lower case), behind its table prefix.
  catalog_table = coalesce(
    var.catalog_table_name,
    lower("${local.crawler_definition.table_prefix}${basename(trimsuffix(local.crawler_definition.s3_target.path_suffix, "/"))}"),
  )

  # What each zip ships, from its real imports: path inside the zip => file of this
  # repository (Python needs the packages at the top of the zip: dynamo_ingest/…,
  # trigger_lambda/…). tools/zip_modules.py writes the list (`make zips`); a test fails when
  # it no longer matches the code's imports.
  zip_modules = jsondecode(file("${path.module}/zip_modules.json"))
  zip_files = {
    for zip, files in local.zip_modules.zips : zip => {
      for inside, source in files : inside => "${local.repo_root}/${source}"
    }
  }
  # The loader's third-party packages (Lambda's runtime has only boto3), built by `make layer`.
  loader_layer_zip = "${path.module}/build/loader-layer.zip"

  # Every log group the stack writes to; all are created here with retention and the key.
  glue_log_group_prefix = "/aws-glue/jobs/${var.name_prefix}"
  log_group_names = {
    trigger     = "/aws/lambda/${var.name_prefix}-trigger"
    callback    = "/aws/lambda/${var.name_prefix}-callback"
    loader      = "/aws/lambda/${var.name_prefix}-loader"
    glue_output = "${local.glue_log_group_prefix}/output"
    glue_error  = "${local.glue_log_group_prefix}/error"
    # EventBridge writes to log groups only under /aws/events/.
    failed_runs = "/aws/events/${var.name_prefix}/failed-runs"
  }
  log_group_arns = [
    for name in values(local.log_group_names) :
    "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${name}"
  ]
  alarm_arn_pattern = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name_prefix}-*"

  # The functions differ only in these settings.
  lambdas = {
    trigger = {
      description          = "S3 upload to incoming/: record the file in the ledger and start the Glue load."
      handler              = "trigger_lambda.handler.handler"
      timeout              = var.trigger_timeout_seconds
      memory_size          = 256
      ephemeral_storage_mb = 512
      reserved_concurrency = var.trigger_reserved_concurrency
    }
    callback = {
      description          = "Glue Job State Change: record the outcome, move the file, resume failed runs, notify."
      handler              = "callback_lambda.handler.handler"
      timeout              = var.callback_timeout_seconds
      memory_size          = 512
      ephemeral_storage_mb = 512
      reserved_concurrency = var.callback_reserved_concurrency
    }
    loader = {
      description          = "A file under the small-file threshold: load it in-process (no Glue run), move it, notify."
      handler              = "loader_lambda.handler.handler"
      timeout              = var.loader_timeout_seconds
      memory_size          = var.loader_memory_mb
      ephemeral_storage_mb = var.loader_ephemeral_storage_mb
      reserved_concurrency = var.loader_reserved_concurrency
    }
  }

  # Exactly the variables each package's settings.py reads (tests/terraform checks it).
  lambda_environment = {
    trigger = {
      GLUE_JOB_NAME    = local.glue_job_name
      LEDGER_TABLE     = local.ledger_table_name
      TARGET_TABLE     = var.target_table_name
      PARTITION_KEY    = var.partition_key
      SORT_KEY         = var.sort_key == null ? "" : var.sort_key
      CATALOG_DATABASE = local.catalog_database
      CATALOG_TABLE    = local.catalog_table
      SNS_TOPIC_ARN    = aws_sns_topic.notifications.arn
      INCOMING_PREFIX  = var.incoming_prefix
      ERROR_PREFIX     = var.error_prefix
      SOURCE_BUCKET    = local.bucket_name
      UPLOAD_ORDER     = var.upload_order
      TABLE_MAX_LOADS  = tostring(var.table_max_loads)
      SWEEP_GRACE_S    = tostring(var.sweep_grace_seconds)
      # Files under the threshold go to the loader function, bigger ones to Glue.
      LOADER_FUNCTION  = local.loader_function_name
      SMALL_FILE_BYTES = tostring(var.small_file_bytes)
    }
    callback = {
      GLUE_JOB_NAME   = local.glue_job_name
      LEDGER_TABLE    = local.ledger_table_name
      SNS_TOPIC_ARN   = aws_sns_topic.notifications.arn
      MAX_ATTEMPTS    = tostring(var.max_attempts)
      INCOMING_PREFIX = var.incoming_prefix
      COMPLETE_PREFIX = var.complete_prefix
      ERROR_PREFIX    = var.error_prefix
      # By name, not by reference: both functions are instances of one resource.
      DISPATCHER_FUNCTION = local.dispatcher_function_name
    }
    loader = {
      LEDGER_TABLE      = local.ledger_table_name
      SNS_TOPIC_ARN     = aws_sns_topic.notifications.arn
      MAX_ATTEMPTS      = tostring(var.max_attempts)
      MAX_CONTINUATIONS = tostring(var.loader_max_continuations)
      DEADLINE_MARGIN_S = tostring(var.loader_deadline_margin_seconds)
      INCOMING_PREFIX   = var.incoming_prefix
      COMPLETE_PREFIX   = var.complete_prefix
      ERROR_PREFIX      = var.error_prefix
      # Woken when a load ends, as the callback does.
      DISPATCHER_FUNCTION = local.dispatcher_function_name
      # The Glue job's default job arguments (glue.tf), applied under each load request's,
      # so a small file loads with the options a big one does.
      JOB_DEFAULT_ARGUMENTS = jsonencode(merge(local.job_default_arguments, local.job_sort_key_argument))
    }
  }

  # The Glue states a run ends in; every one of them reaches the callback.
  glue_final_states = ["SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED"]
  callback_event_pattern = {
    source        = ["aws.glue"]
    "detail-type" = ["Glue Job State Change"]
    detail = {
      jobName = [local.glue_job_name]
      state   = local.glue_final_states
    }
  }
  # Runs that ended badly, for the failed-runs alarm (a resumed run counts each attempt).
  failed_run_event_pattern = {
    source        = ["aws.glue"]
    "detail-type" = ["Glue Job State Change"]
    detail = {
      jobName = [local.glue_job_name]
      state   = ["FAILED", "TIMEOUT"]
    }
  }
}
