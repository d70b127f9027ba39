# One role per component, each allowed exactly what its code calls (tests/terraform derives the
# boto3 calls from the code and checks every one has its action here) plus what the runtime
# itself needs (logs, the failed-events queue, the job's script, KMS). Resources are this
# stack's ARNs; the only "*" resource is CloudWatch's PutMetricData (see the Glue job policy),
# apart from the key policy in kms.tf, where "*" means the key itself.

locals {
  incoming_objects = "${local.bucket_arn}/${var.incoming_prefix}*"
  complete_objects = "${local.bucket_arn}/${var.complete_prefix}*"
  error_objects    = "${local.bucket_arn}/${var.error_prefix}*"
  ledger_arn       = aws_dynamodb_table.ledger.arn
  catalog_arns = [
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog",
    "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${local.catalog_database}",
  ]
  catalog_tables_arn = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${local.catalog_database}/*"
}

# ---------------------------------------------------------------------------------------------
# Trust
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    sid     = "LambdaAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "glue_assume" {
  statement {
    sid     = "GlueAssumesRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["glue.amazonaws.com"]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Lambda functions
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "lambda" {
  for_each = local.lambdas

  name               = "${var.name_prefix}-${each.key}"
  description        = "The ${each.key} function of ${var.name_prefix}."
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
}

# What the Lambda service does with the function's role: write its logs, send failed
# asynchronous events to its queue (the on-failure destination), decrypt its environment.
data "aws_iam_policy_document" "lambda_runtime" {
  for_each = local.lambdas

  statement {
    sid       = "WriteOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this[each.key].arn}:*"]
  }

  statement {
    sid       = "SendFailedEventsToOwnQueue"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.failed_events[each.key].arn]
  }

  # Lambda decrypts the environment with the execution role at cold start (a denial surfaces
  # as KMSAccessDeniedException). Unconditioned on purpose: the request context Lambda sends
  # is not documented, and a wrong condition would stop the function from starting.
  statement {
    sid       = "DecryptOwnEnvironment"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
  }
}

data "aws_iam_policy_document" "trigger" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_runtime["trigger"].json,
  data.aws_iam_policy_document.dispatcher.json]

  # Ledger.receive / mark_started / mark_not_started: read, then conditional PutItem.
  statement {
    sid       = "RecordFilesInLedger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem"]
    resources = [local.ledger_arn]
  }

  statement {
    sid       = "StartLoadJob"
    effect    = "Allow"
    actions   = ["glue:StartJobRun"]
    resources = [local.glue_job_arn]
  }

  # routing.start_load hands a small file to the loader function (asynchronous Invoke).
  statement {
    sid       = "StartSmallFileLoads"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.loader_function_arn]
  }

  statement {
    sid       = "NotifyFailures"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }

  # The ledger table and the topic are encrypted with the stack's key.
  statement {
    sid       = "UseStackKeyForLedgerAndTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${local.region}.amazonaws.com", "sns.${local.region}.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "callback" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_runtime["callback"].json,
  data.aws_iam_policy_document.wake_dispatcher.json]

  # Ledger transitions (GetItem + conditional PutItem); Ledger.find for a run started by hand
  # queries the file's records and, for a file already moved, scans for its new location.
  statement {
    sid       = "RecordOutcomesInLedger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"]
    resources = [local.ledger_arn]
  }

  # GetJobRun reads the finished run's arguments; StartJobRun resumes a failed one.
  statement {
    sid       = "ReadAndResumeLoadRuns"
    effect    = "Allow"
    actions   = ["glue:GetJobRun", "glue:StartJobRun"]
    resources = [local.glue_job_arn]
  }

  # Moving a file = HeadObject + CopyObject (TaggingDirective COPY) or a multipart copy, then
  # DeleteObject of the source.
  statement {
    sid       = "ReadAndRemoveIncomingFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"]
    resources = [local.incoming_objects]
  }

  # The moved file, and the error report written beside a failed one.
  statement {
    sid       = "WriteCompleteAndErrorFiles"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
    resources = [local.complete_objects, local.error_objects]
  }

  statement {
    sid       = "NotifyOutcomes"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }

  statement {
    sid       = "UseStackKeyForBucketLedgerAndTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${local.region}.amazonaws.com",
        "dynamodb.${local.region}.amazonaws.com",
        "sns.${local.region}.amazonaws.com",
      ]
    }
  }
}

# The loader does what a Glue run of the job does for a small file (read the source, write
# the target table, checkpoints and the run record in the ledger, the rejects file) plus the
# finish the callback does for a Glue run (move the file, notify), and it hands a load nearing
# its deadline on to a fresh invocation of itself.
data "aws_iam_policy_document" "loader" {
  source_policy_documents = [data.aws_iam_policy_document.lambda_runtime["loader"].json,
  data.aws_iam_policy_document.wake_dispatcher.json]

  # The run record, its lease and the resume checkpoints (GetItem, conditional PutItem,
  # Query, DeleteItem after a finished load), as the job's.
  statement {
    sid       = "RecordRunAndCheckpointsInLedger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem"]
    resources = [local.ledger_arn]
  }

  # BatchWriteItem for --write_mode overwrite; PutItem/UpdateItem with a condition for
  # insert, merge and the --version_column guard; DescribeTable for the key schema and rate.
  statement {
    sid       = "WriteTargetTable"
    effect    = "Allow"
    actions   = ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [local.target_table_arn]
  }

  # The CSV layout the crawler registered (GetTable is authorized on catalog, database, table).
  statement {
    sid       = "ReadCatalogTable"
    effect    = "Allow"
    actions   = ["glue:GetTable"]
    resources = concat(local.catalog_arns, [local.catalog_tables_arn])
  }

  # The source is staged to /tmp (HeadObject + GetObject) and, when loaded, moved (copy with
  # its tags, then DeleteObject); the rejects parts are read back to merge them.
  statement {
    sid       = "ReadAndRemoveSourceAndRejectsParts"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectTagging", "s3:DeleteObject"]
    resources = [local.incoming_objects, local.error_objects]
  }

  # The moved file, the rejects parts and file, the error report beside a failed file.
  statement {
    sid       = "WriteCompleteAndErrorFiles"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:AbortMultipartUpload"]
    resources = [local.complete_objects, local.error_objects]
  }

  statement {
    sid       = "NotifyOutcomes"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.notifications.arn]
  }

  # A load nearing the deadline continues in a fresh invocation (asynchronous Invoke of the
  # function's own unqualified ARN, as the trigger invoked it).
  statement {
    sid       = "ContinueInFreshInvocation"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.loader_function_arn]
  }

  statement {
    sid       = "UseStackKeyForBucketLedgerAndTopic"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values = [
        "s3.${local.region}.amazonaws.com",
        "dynamodb.${local.region}.amazonaws.com",
        "sns.${local.region}.amazonaws.com",
      ]
    }
  }

  # The target table's key, as for the Glue job.
  dynamic "statement" {
    for_each = length(local.target_table_kms_key_arns) > 0 ? [local.target_table_kms_key_arns] : []
    content {
      sid       = "UseTargetTableKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = statement.value
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }
}

locals {
  lambda_policies = {
    trigger  = data.aws_iam_policy_document.trigger.json
    callback = data.aws_iam_policy_document.callback.json
    loader   = data.aws_iam_policy_document.loader.json
  }
}

resource "aws_iam_role_policy" "lambda" {
  for_each = local.lambdas

  name   = "${var.name_prefix}-${each.key}"
  role   = aws_iam_role.lambda[each.key].id
  policy = local.lambda_policies[each.key]
}

# ---------------------------------------------------------------------------------------------
# Glue job
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "glue_job" {
  name               = "${var.name_prefix}-glue-job"
  description        = "The ${local.glue_job_name} Glue job."
  assume_role_policy = data.aws_iam_policy_document.glue_assume.json
}

data "aws_iam_policy_document" "glue_job" {
  # Glue reads the script and the library zip from here when a run starts.
  statement {
    sid       = "ReadJobScriptAndLibrary"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/${local.glue_assets_prefix}*"]
  }

  # HeadObject + GetObject of the source (Spark reads it too); the rejects parts are read back
  # to merge them. A source whose file name Hadoop cannot read is copied (CopyObject, tags
  # carried along) under a safe name beside its rejects file, and Spark reads the copy.
  statement {
    sid       = "ReadSourceAndRejects"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:GetObjectTagging"]
    resources = [local.incoming_objects, local.error_objects]
  }

  # Rejected rows: one part per Spark partition (upload_file), merged into one file, parts
  # deleted; the run report when --report_path points under error/; the copy of a source that
  # Spark reads under a safe name, deleted after the run.
  statement {
    sid       = "WriteRejectsAndReport"
    effect    = "Allow"
    actions   = ["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    resources = [local.error_objects]
  }

  # Glue's --TempDir scratch space.
  statement {
    sid       = "UseTempDir"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.bucket_arn}/${local.glue_temp_prefix}*"]
  }

  # Spark's S3 file system lists a path's prefix when it resolves it.
  statement {
    sid       = "ListSourceAndTempFolders"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.incoming_prefix}*", "${var.error_prefix}*", "${local.glue_temp_prefix}*"]
    }
  }

  # BatchWriteItem for --write_mode overwrite; PutItem/UpdateItem with a condition for
  # insert, merge and the --version_column guard.
  statement {
    sid       = "WriteTargetTable"
    effect    = "Allow"
    actions   = ["dynamodb:BatchWriteItem", "dynamodb:DescribeTable", "dynamodb:PutItem", "dynamodb:UpdateItem"]
    resources = [local.target_table_arn]
  }

  # The run record (job_started, record_report) and the per-partition resume checkpoints
  # (PutItem, Query, DeleteItem after a finished load or on --restart).
  statement {
    sid       = "RecordRunAndCheckpointsInLedger"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:DeleteItem"]
    resources = [local.ledger_arn]
  }

  # The CSV layout the crawler registered (GetTable is authorized on catalog, database, table).
  statement {
    sid       = "ReadCatalogTable"
    effect    = "Allow"
    actions   = ["glue:GetTable"]
    resources = concat(local.catalog_arns, [local.catalog_tables_arn])
  }

  statement {
    sid       = "WriteJobLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for name in ["glue_output", "glue_error"] : "${aws_cloudwatch_log_group.this[name].arn}:*"]
  }

  # --enable-metrics. PutMetricData has no resource-level permissions (Service Authorization
  # Reference: resource "*" required); the condition keeps it to Glue's namespace.
  statement {
    sid       = "PublishJobMetrics"
    effect    = "Allow"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = ["Glue"]
    }
  }

  statement {
    sid       = "UseStackKeyForBucketAndLedger"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"]
    }
  }

  # The target table's key: ours when this stack created it, the table's own customer managed
  # key when target_table_kms_key_arn names one.
  dynamic "statement" {
    for_each = length(local.target_table_kms_key_arns) > 0 ? [local.target_table_kms_key_arns] : []
    content {
      sid       = "UseTargetTableKey"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
      resources = statement.value
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["dynamodb.${local.region}.amazonaws.com"]
      }
    }
  }
}

resource "aws_iam_role_policy" "glue_job" {
  name   = "${var.name_prefix}-glue-job"
  role   = aws_iam_role.glue_job.id
  policy = data.aws_iam_policy_document.glue_job.json
}

# ---------------------------------------------------------------------------------------------
# Crawler
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "crawler" {
  name               = "${var.name_prefix}-crawler"
  description        = "The ${var.name_prefix} crawler that registers CSV layouts."
  assume_role_policy = data.aws_iam_policy_document.glue_assume.json
}

data "aws_iam_policy_document" "crawler" {
  statement {
    sid       = "ReadSampleFiles"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arn}/${local.crawler_definition.s3_target.path_suffix}*"]
  }

  statement {
    sid       = "ListSampleFolder"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.crawler_definition.s3_target.path_suffix}*"]
    }
  }

  # Create or update (UPDATE_IN_DATABASE) the tables of the crawled folders, with their
  # partitions when the folder has sub-folders; never delete (delete_behavior LOG).
  statement {
    sid    = "RegisterTablesInOwnDatabase"
    effect = "Allow"
    actions = [
      "glue:GetDatabase",
      "glue:GetTable",
      "glue:GetTables",
      "glue:CreateTable",
      "glue:UpdateTable",
      "glue:GetPartition",
      "glue:GetPartitions",
      "glue:BatchGetPartition",
      "glue:CreatePartition",
      "glue:BatchCreatePartition",
      "glue:UpdatePartition",
      "glue:BatchUpdatePartition",
    ]
    resources = concat(local.catalog_arns, [local.catalog_tables_arn])
  }

  # Crawlers log to the account's /aws-glue/crawlers group (shared by every crawler, so not
  # created here), one stream per crawler.
  statement {
    sid     = "WriteCrawlerLogs"
    effect  = "Allow"
    actions = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      "arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:/aws-glue/crawlers:*",
    ]
  }

  statement {
    sid       = "DecryptSampleFiles"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.main.arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "crawler" {
  name   = "${var.name_prefix}-crawler"
  role   = aws_iam_role.crawler.id
  policy = data.aws_iam_policy_document.crawler.json
}
