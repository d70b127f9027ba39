# The trigger, the callback and the loader: same packaging, logging, retries and failure
# handling, so one definition for all (local.lambdas holds what differs). Each zip holds only
# the modules its handler imports (terraform/zip_modules.json, `make zips`).

data "archive_file" "package" {
  for_each    = local.zip_files
  type        = "zip"
  output_path = "${path.module}/build/${each.key}.zip"

  dynamic "source" {
    for_each = each.value
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

# The loader's third-party packages (xxhash, pyarrow: the in-process engine's), which the
# Lambda runtime lacks; `make layer` builds the zip for var.lambda_runtime before plan/apply.
resource "aws_lambda_layer_version" "loader_packages" {
  layer_name               = "${var.name_prefix}-loader-packages"
  description              = "Third-party packages of the ${local.loader_function_name} function (make layer)."
  filename                 = local.loader_layer_zip
  source_code_hash         = fileexists(local.loader_layer_zip) ? filebase64sha256(local.loader_layer_zip) : null
  compatible_runtimes      = [var.lambda_runtime]
  compatible_architectures = ["x86_64"]

  lifecycle {
    precondition {
      condition     = fileexists(local.loader_layer_zip)
      error_message = "terraform/build/loader-layer.zip is missing: run `make layer` (it builds the loader's third-party packages for var.lambda_runtime), then plan again."
    }
    # pyarrow's Linux wheels are manylinux_2_28 (glibc 2.28): the python3.12+ runtimes run on
    # Amazon Linux 2023, python3.11 on Amazon Linux 2 (glibc 2.26).
    precondition {
      condition     = var.lambda_runtime != "python3.11"
      error_message = "The loader's layer needs python3.12 or later (Amazon Linux 2023): its pyarrow wheels need glibc 2.28, and python3.11 runs on Amazon Linux 2."
    }
  }
}

locals {
  lambda_layers = {
    loader = [aws_lambda_layer_version.loader_packages.arn]
  }
}

resource "aws_lambda_function" "handler" {
  for_each = local.lambdas

  #checkov:skip=CKV_AWS_117:The functions call only AWS APIs; a VPC would add NAT or endpoints and nothing to protect
  #checkov:skip=CKV_AWS_272:Code signing needs a signing profile and a signed-artifact pipeline; Terraform builds the zip from the reviewed repository
  #checkov:skip=CKV_AWS_116:Failed async events go to the on-failure destination (invoke config below), which keeps request and error; a DLQ would be a poorer second copy
  #checkov:skip=CKV_AWS_50:Each file is traced by its ledger record and logs; X-Ray would need xray:PutTraceSegments on "*"
  function_name                  = "${var.name_prefix}-${each.key}"
  description                    = each.value.description
  role                           = aws_iam_role.lambda[each.key].arn
  runtime                        = var.lambda_runtime
  handler                        = each.value.handler
  filename                       = data.archive_file.package[each.key].output_path
  source_code_hash               = data.archive_file.package[each.key].output_base64sha256
  timeout                        = each.value.timeout
  memory_size                    = each.value.memory_size
  reserved_concurrent_executions = each.value.reserved_concurrency
  kms_key_arn                    = aws_kms_key.main.arn
  # The layer's wheels are built for x86_64 (make layer).
  architectures = ["x86_64"]
  layers        = lookup(local.lambda_layers, each.key, [])

  ephemeral_storage {
    size = each.value.ephemeral_storage_mb
  }

  environment {
    variables = local.lambda_environment[each.key]
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  depends_on = [aws_iam_role_policy.lambda]

  lifecycle {
    # A load stops at a checkpoint this long before the timeout; with no time left to load
    # between hand-ons it would only ever continue.
    precondition {
      condition     = each.key != "loader" || var.loader_deadline_margin_seconds * 2 <= var.loader_timeout_seconds
      error_message = "loader_deadline_margin_seconds must be at most half of loader_timeout_seconds: a load stops that long before the timeout to hand the file on."
    }
  }
}

# Asynchronous invocations (S3 notifications, EventBridge) that still fail after the retries
# land in the function's failed-events queue with the original event, for replay.
resource "aws_lambda_function_event_invoke_config" "handler" {
  for_each = local.lambdas

  function_name                = aws_lambda_function.handler[each.key].function_name
  maximum_retry_attempts       = var.async_max_retry_attempts
  maximum_event_age_in_seconds = var.async_max_event_age_seconds

  destination_config {
    on_failure {
      destination = aws_sqs_queue.failed_events[each.key].arn
    }
  }
}
