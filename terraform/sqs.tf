# One failed-events queue per function: asynchronous invocations that failed after Lambda's
# retries (and, for the callback, events EventBridge could not deliver). Their depth alarms.
#
# SSE-SQS rather than the stack's key: EventBridge can send to a queue encrypted with a
# customer managed key only if the key policy lets events.amazonaws.com use the key, and that
# grant cannot be scoped to our rule (EventBridge's KMS requests carry no aws:SourceArn).
resource "aws_sqs_queue" "failed_events" {
  for_each = local.lambdas

  name                      = "${var.name_prefix}-${each.key}-failed-events"
  sqs_managed_sse_enabled   = true
  message_retention_seconds = 1209600 # 14 days, SQS's maximum: time to fix and replay
}

data "aws_iam_policy_document" "failed_events" {
  for_each = local.lambdas

  statement {
    sid     = "DenyRequestsWithoutTls"
    effect  = "Deny"
    actions = ["sqs:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sqs_queue.failed_events[each.key].arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  # EventBridge's own dead-letter queue for the callback target (delivery failures such as a
  # throttled invoke that outlived the target's retry policy).
  dynamic "statement" {
    for_each = each.key == "callback" ? [aws_cloudwatch_event_rule.glue_state_change.arn] : []
    content {
      sid     = "EventBridgeDeadLettersCallbackDeliveries"
      effect  = "Allow"
      actions = ["sqs:SendMessage"]
      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }
      resources = [aws_sqs_queue.failed_events[each.key].arn]
      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = [statement.value]
      }
    }
  }
}

resource "aws_sqs_queue_policy" "failed_events" {
  for_each = local.lambdas

  queue_url = aws_sqs_queue.failed_events[each.key].id
  policy    = data.aws_iam_policy_document.failed_events[each.key].json
}
