# The ledger: one record per source object, written by the trigger, the job and the callback.
# Its key attribute names are defined once, in glue_jobs/dynamo_ingest/control/ledger.py; the
# terraform tests compare these locals with that module.
locals {
  ledger_partition_key = "object_id"
  ledger_sort_key      = "record"
}

resource "aws_dynamodb_table" "ledger" {
  name                        = local.ledger_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = local.ledger_partition_key
  range_key                   = local.ledger_sort_key
  deletion_protection_enabled = true

  attribute {
    name = local.ledger_partition_key
    type = "S"
  }

  attribute {
    name = local.ledger_sort_key
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

# The target table: created here when asked, otherwise an existing table looked up by name.
resource "aws_dynamodb_table" "target" {
  count = var.create_target_table ? 1 : 0

  name                        = var.target_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.partition_key
  range_key                   = var.sort_key
  deletion_protection_enabled = true

  attribute {
    name = var.partition_key
    type = var.partition_key_type
  }

  dynamic "attribute" {
    for_each = var.sort_key == null ? [] : [var.sort_key]
    content {
      name = attribute.value
      type = var.sort_key_type
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.main.arn
  }
}

data "aws_dynamodb_table" "target" {
  count = var.create_target_table ? 0 : 1

  name = var.target_table_name
}

locals {
  target_table_arn = var.create_target_table ? aws_dynamodb_table.target[0].arn : data.aws_dynamodb_table.target[0].arn
  # KMS keys the job needs to write the target table: ours when we created it, the existing
  # table's own customer managed key when there is one.
  target_table_kms_key_arns = compact([
    var.create_target_table ? aws_kms_key.main.arn : var.target_table_kms_key_arn,
  ])
}
