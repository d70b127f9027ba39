# Every log group the stack writes to, created up front so that retention and encryption apply
# from the first line (a group created on first write keeps logs forever, unencrypted).
resource "aws_cloudwatch_log_group" "this" {
  for_each = local.log_group_names

  name              = each.value
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.main.arn
}

# EventBridge writes the failed-run events to their log group through this resource policy.
data "aws_iam_policy_document" "events_write_failed_runs" {
  statement {
    sid     = "EventBridgeWritesFailedRunEvents"
    effect  = "Allow"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "delivery.logs.amazonaws.com"]
    }
    resources = ["${aws_cloudwatch_log_group.this["failed_runs"].arn}:*"]
    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.failed_runs.arn]
    }
  }
}

resource "aws_cloudwatch_log_resource_policy" "events_write_failed_runs" {
  policy_name     = "${var.name_prefix}-events-write-failed-runs"
  policy_document = data.aws_iam_policy_document.events_write_failed_runs.json
}
