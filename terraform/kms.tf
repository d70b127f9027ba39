# One customer managed key encrypts everything this stack stores: the bucket, both tables, the
# topic, the log groups and the functions' environment. Queues use SSE-SQS (see sqs.tf).

resource "aws_kms_key" "main" {
  description             = "${var.name_prefix}: bucket, tables, topic, logs and Lambda environment"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_key_deletion_window_days
  policy                  = data.aws_iam_policy_document.kms.json
}

resource "aws_kms_alias" "main" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.main.key_id
}

# In a key policy "*" as the resource means this key and nothing else, so every statement
# below is scoped by its principal (and conditions) instead.
data "aws_iam_policy_document" "kms" {
  # Checkov reads this key policy as an identity policy: there "*" means every resource, in a
  # key policy it means this key, and the principals are the account and two services.
  #checkov:skip=CKV_AWS_109:Key policy: resource "*" is this key; administration is limited to this account's IAM
  #checkov:skip=CKV_AWS_111:Key policy: resource "*" is this key; use is limited by principal and encryption-context/source conditions
  #checkov:skip=CKV_AWS_356:Key policy: resource "*" is the only form a key policy accepts and means this key
  # The account administers the key and lets IAM policies grant its use; that delegation is
  # how the roles in iam.tf use the key. Without it the key could become unmanageable.
  statement {
    sid    = "AccountAdministersKeyAndDelegatesUseToIam"
    effect = "Allow"
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListGrants",
      "kms:ListKeyRotations",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
      "kms:RetireGrant",
      "kms:RevokeGrant",
      "kms:RotateKeyOnDemand",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]
  }

  # CloudWatch Logs encrypts our log groups itself; the encryption context names the group,
  # so the service can use the key for these groups only.
  statement {
    sid    = "CloudWatchLogsEncryptsThisStacksLogGroups"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    actions = [
      "kms:Decrypt",
      "kms:DescribeKey",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:GenerateDataKeyWithoutPlaintext",
      "kms:ReEncryptFrom",
      "kms:ReEncryptTo",
    ]
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = local.log_group_arns
    }
  }

  # CloudWatch alarms publish to the encrypted topic as the cloudwatch service principal,
  # which needs the key to do so (Amazon SNS docs, "Enable compatibility between event sources
  # from AWS services and encrypted topics"); limited to this stack's alarms.
  statement {
    sid    = "CloudWatchAlarmsPublishToEncryptedTopic"
    effect = "Allow"
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
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
}
