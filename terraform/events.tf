# Every final state of this job's runs → the callback Lambda.
resource "aws_cloudwatch_event_rule" "glue_state_change" {
  name          = "${var.name_prefix}-glue-state-change"
  description   = "Runs of ${local.glue_job_name} that ended: record, move the file, resume or notify."
  event_pattern = jsonencode(local.callback_event_pattern)
}

resource "aws_cloudwatch_event_target" "callback" {
  rule = aws_cloudwatch_event_rule.glue_state_change.name
  arn  = aws_lambda_function.handler["callback"].arn

  # Delivery to Lambda is asynchronous; these retries cover throttled or failed deliveries,
  # Lambda's own retries (lambda.tf) cover errors of the function.
  retry_policy {
    maximum_event_age_in_seconds = var.async_max_event_age_seconds
    maximum_retry_attempts       = 185
  }

  dead_letter_config {
    arn = aws_sqs_queue.failed_events["callback"].arn
  }
}

resource "aws_lambda_permission" "events_invoke_callback" {
  statement_id  = "AllowGlueStateChangeRule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.handler["callback"].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.glue_state_change.arn
}

# Runs that failed or timed out → a log group (one line per failed run, queryable) and the
# failed-runs alarm on this rule's invocations (alarms.tf).
resource "aws_cloudwatch_event_rule" "failed_runs" {
  name          = "${var.name_prefix}-glue-run-failed"
  description   = "Runs of ${local.glue_job_name} that failed or timed out (each attempt)."
  event_pattern = jsonencode(local.failed_run_event_pattern)
}

resource "aws_cloudwatch_event_target" "failed_runs_log" {
  rule = aws_cloudwatch_event_rule.failed_runs.name
  arn  = aws_cloudwatch_log_group.this["failed_runs"].arn

  depends_on = [aws_cloudwatch_log_resource_policy.events_write_failed_runs]
}
