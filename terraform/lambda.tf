# The trigger and the callback: same packaging, logging, retries and failure handling, so one
# definition for both (local.lambdas holds what differs).

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

  environment {
    variables = local.lambda_environment[each.key]
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.this[each.key].name
  }

  depends_on = [aws_iam_role_policy.lambda]
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
