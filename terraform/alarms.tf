# Alarm names start with the prefix: the topic and key policies trust alarms by that pattern.

# Any run of the job that FAILED or TIMED OUT in the last five minutes. Each attempt counts,
# including those the callback then resumes; the final failure also comes as an SNS message
# from the callback with the file and the reason.
resource "aws_cloudwatch_metric_alarm" "failed_runs" {
  alarm_name          = "${var.name_prefix}-glue-runs-failed"
  alarm_description   = "A run of ${local.glue_job_name} failed or timed out; see log group ${local.log_group_names.failed_runs} and the ledger (dynamo-ingest status)."
  namespace           = "AWS/Events"
  metric_name         = "Invocations"
  dimensions          = { RuleName = aws_cloudwatch_event_rule.failed_runs.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  # EventBridge sends this metric only when it is not zero.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.notifications.arn]
}

# Events that neither function could handle after every retry: a file waits in a queue.
resource "aws_cloudwatch_metric_alarm" "failed_events" {
  for_each = local.lambdas

  alarm_name          = "${var.name_prefix}-${each.key}-failed-events"
  alarm_description   = "Events the ${each.key} function could not handle are waiting in ${aws_sqs_queue.failed_events[each.key].name}; fix the cause, then replay them or run dynamo-ingest retry."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.failed_events[each.key].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.notifications.arn]
  ok_actions          = [aws_sns_topic.notifications.arn]
}

# The loader function: an invocation that failed (a load nearing the deadline hands the file
# on instead), one Lambda throttled (reserved concurrency reached: the async event waits and
# is retried), or one that ran close to its timeout (the deadline margin is too small for the
# file's writes in flight).
locals {
  loader_alarms = {
    errors = {
      metric      = "Errors"
      statistic   = "Sum"
      threshold   = 1
      description = "An invocation of ${local.loader_function_name} failed; see log group ${local.log_group_names.loader} and dynamo-ingest status."
    }
    throttles = {
      metric      = "Throttles"
      statistic   = "Sum"
      threshold   = 1
      description = "${local.loader_function_name} was throttled at its reserved concurrency (loader_reserved_concurrency); Lambda retries the event, but small files wait."
    }
    duration = {
      metric      = "Duration"
      statistic   = "Maximum"
      threshold   = 0.9 * var.loader_timeout_seconds * 1000
      description = "An invocation of ${local.loader_function_name} ran within 10 % of its timeout; raise loader_deadline_margin_seconds or lower small_file_bytes."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "loader" {
  for_each = local.loader_alarms

  alarm_name          = "${var.name_prefix}-loader-${each.key}"
  alarm_description   = each.value.description
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = aws_lambda_function.handler["loader"].function_name }
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = each.value.threshold
  comparison_operator = "GreaterThanOrEqualToThreshold"
  # Lambda sends no datapoint for a period without invocations.
  treat_missing_data = "notBreaching"
  alarm_actions      = [aws_sns_topic.notifications.arn]
}
