# The bucket the CSV files arrive in (incoming/), end in (complete/, error/), and that holds the
# Glue script, its library and Spark's scratch space (glue/).

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_18:Access logs need a second bucket per stack; CloudTrail S3 data events (an account-level choice) are the better audit trail
  #checkov:skip=CKV_AWS_144:Files are transient here (the data lives in DynamoDB with PITR); cross-region replication is a DR choice outside this pipeline
  bucket = local.bucket_name
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.main.arn
    }
    # One data key per object per bucket key lifetime instead of one KMS call per request.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  # Versioning must be on before the noncurrent-version rules mean anything.
  depends_on = [aws_s3_bucket_versioning.data]

  rule {
    id     = "expire-loaded-files"
    status = "Enabled"
    filter {
      prefix = var.complete_prefix
    }
    expiration {
      days = var.complete_retention_days
    }
  }

  rule {
    id     = "expire-failed-files"
    status = "Enabled"
    filter {
      prefix = var.error_prefix
    }
    expiration {
      days = var.error_retention_days
    }
  }

  rule {
    id     = "expire-glue-scratch"
    status = "Enabled"
    filter {
      prefix = local.glue_temp_prefix
    }
    expiration {
      days = 7
    }
  }

  # The callback moves files by copy + delete, so every moved file leaves a noncurrent version
  # (and a delete marker) in incoming/; these rules clean them up bucket-wide.
  rule {
    id     = "clean-up-versions-and-uploads"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_retention_days
    }
    expiration {
      expired_object_delete_marker = true
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid     = "DenyRequestsWithoutTls"
    effect  = "Deny"
    actions = ["s3:*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_s3_bucket.data.arn, "${aws_s3_bucket.data.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket = aws_s3_bucket.data.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.data]
}

# S3 → trigger Lambda for new CSV files in incoming/ only (at least once; the trigger
# de-duplicates by bucket, key and ETag). One filter per accepted suffix (S3 takes one suffix
# per filter), from the list the trigger itself checks (incoming_suffixes.json); none of them
# ends with another, which S3 would refuse as overlapping.
resource "aws_s3_bucket_notification" "incoming" {
  bucket = aws_s3_bucket.data.id

  dynamic "lambda_function" {
    for_each = toset(local.incoming_suffixes)
    content {
      lambda_function_arn = aws_lambda_function.handler["trigger"].arn
      events              = ["s3:ObjectCreated:*"]
      filter_prefix       = var.incoming_prefix
      filter_suffix       = lambda_function.value
    }
  }

  depends_on = [aws_lambda_permission.s3_invokes_trigger]

  lifecycle {
    precondition {
      condition = alltrue(flatten([
        for i, outer in local.file_prefixes : [
          for j, inner in local.file_prefixes : i == j || !startswith(inner, outer)
        ]
      ]))
      error_message = "incoming_prefix, complete_prefix and error_prefix must not contain one another: a moved file or its rejects would look like a new upload."
    }
  }
}

resource "aws_lambda_permission" "s3_invokes_trigger" {
  statement_id   = "AllowS3Notification"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.handler["trigger"].function_name
  principal      = "s3.amazonaws.com"
  source_arn     = aws_s3_bucket.data.arn
  source_account = local.account_id
}

# The job's script and library: uploaded from this repository, replaced when they change.
resource "aws_s3_object" "glue_script" {
  bucket      = aws_s3_bucket.data.id
  key         = "${local.glue_assets_prefix}load_csv_to_dynamodb.py"
  source      = "${local.repo_root}/glue_jobs/load_csv_to_dynamodb.py"
  source_hash = filemd5("${local.repo_root}/glue_jobs/load_csv_to_dynamodb.py")
}

resource "aws_s3_object" "glue_library" {
  bucket      = aws_s3_bucket.data.id
  key         = "${local.glue_assets_prefix}dynamo_ingest.zip"
  source      = data.archive_file.package["glue_library"].output_path
  source_hash = data.archive_file.package["glue_library"].output_md5
}
