# Failures, rows rejected and alarms: published by both functions and by CloudWatch alarms.
resource "aws_sns_topic" "notifications" {
  name              = local.sns_topic_name
  kms_master_key_id = aws_kms_key.main.arn
}

data "aws_iam_policy_document" "notifications" {
  # Same-account publishers (the functions) are allowed by their IAM roles; the alarms publish
  # as the CloudWatch service and need the topic's consent.
  statement {
    sid     = "CloudWatchAlarmsPublish"
    effect  = "Allow"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = [aws_sns_topic.notifications.arn]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.alarm_arn_pattern]
    }
  }

  statement {
    sid     = "DenyPublishWithoutTls"
    effect  = "Deny"
    actions = ["sns:Publish"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sns_topic.notifications.arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "notifications" {
  arn    = aws_sns_topic.notifications.arn
  policy = data.aws_iam_policy_document.notifications.json
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.notifications.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}
