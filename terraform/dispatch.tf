# The dispatcher: the trigger function's second and third modes (trigger_lambda/dispatching.py).
# It starts the queued files of the target table while its limits allow; it runs when a file
# is queued (the S3 notification), when a load ends (the callback invokes it) and on this
# schedule, the safety net for a lost wake-up, a dead dispatcher or a lost S3 event.

locals {
  dispatcher_function_name = "${var.name_prefix}-trigger"
  dispatcher_function_arn  = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.dispatcher_function_name}"
}

resource "aws_cloudwatch_event_rule" "dispatch_sweep" {
  name                = "${var.name_prefix}-dispatch-sweep"
  description         = "Every ${var.dispatch_sweep_minutes} min: start queued files of ${var.target_table_name} that nothing started."
  schedule_expression = "rate(${var.dispatch_sweep_minutes} minute${var.dispatch_sweep_minutes == 1 ? "" : "s"})"
}

resource "aws_cloudwatch_event_target" "dispatch_sweep" {
  rule = aws_cloudwatch_event_rule.dispatch_sweep.name
  arn  = aws_lambda_function.handler["trigger"].arn

  # A missed sweep is made up by the next one: no long retries.
  retry_policy {
    maximum_event_age_in_seconds = 60 * var.dispatch_sweep_minutes
    maximum_retry_attempts       = 2
  }

  dead_letter_config {
    arn = aws_sqs_queue.failed_events["trigger"].arn
  }
}

resource "aws_lambda_permission" "events_invoke_dispatch_sweep" {
  statement_id  = "AllowDispatchSweepRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["trigger"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.dispatch_sweep.arn
}

# The trigger role, as dispatcher: read the table's queue (Query), drop the entries of
# finished files, claim with a transaction (authorized as PutItem), and list incoming/ for
# uploads whose S3 event is late or lost.
data "aws_iam_policy_document" "dispatcher" {
  statement {
    sid       = "ReadAndTidyTableQueue"
    effect    = "Allow"
    actions   = ["dynamodb:Query", "dynamodb:DeleteItem"]
    resources = [local.ledger_arn]
  }

  statement {
    sid       = "ListUploadsWithoutEvent"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.incoming_prefix}*"]
    }
  }
}

# The callback and loader roles: wake the dispatcher when a load ends (asynchronous invocation); a retry
# that Glue refuses for concurrency goes back into the queue (its entry is rewritten).
data "aws_iam_policy_document" "wake_dispatcher" {
  statement {
    sid       = "WakeDispatcher"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.dispatcher_function_arn]
  }

  statement {
    sid       = "TidyTableQueue"
    effect    = "Allow"
    actions   = ["dynamodb:DeleteItem"]
    resources = [local.ledger_arn]
  }
}
