output "bucket_name" {
  description = "Bucket the CSV files are uploaded to."
  value       = aws_s3_bucket.data.id
}

output "incoming_uri" {
  description = "Upload CSV files here to load them."
  value       = "s3://${aws_s3_bucket.data.id}/${var.incoming_prefix}"
}

output "schema_uri" {
  description = "Upload one sample file of a new layout here, then start the crawler."
  value       = local.crawler_path
}

output "glue_job_name" {
  description = "The load job (aws glue start-job-run --job-name …)."
  value       = aws_glue_job.load_csv.name
}

output "crawler_name" {
  description = "The crawler that registers a layout in the catalog (aws glue start-crawler --name …)."
  value       = aws_glue_crawler.schema.name
}

output "catalog_database" {
  description = "Catalog database of the CSV layouts (--catalog_database)."
  value       = aws_glue_catalog_database.this.name
}

output "catalog_table" {
  description = "Catalog table the job reads the layout from (--catalog_table)."
  value       = local.catalog_table
}

output "ledger_table_name" {
  description = "The ledger table (dynamo-ingest status --ledger_table …)."
  value       = aws_dynamodb_table.ledger.name
}

output "target_table_arn" {
  description = "The table the rows are written to."
  value       = local.target_table_arn
}

output "sns_topic_arn" {
  description = "Topic of failures, rejected rows and alarms."
  value       = aws_sns_topic.notifications.arn
}

output "failed_events_queue_urls" {
  description = "Per function, the queue of events it could not handle after every retry."
  value       = { for name, queue in aws_sqs_queue.failed_events : name => queue.url }
}

output "lambda_function_names" {
  description = "The trigger, callback and loader functions."
  value       = { for name, function in aws_lambda_function.handler : name => function.function_name }
}

output "kms_key_arn" {
  description = "Key that encrypts the bucket, tables, topic and logs; uploaders need kms:GenerateDataKey on it."
  value       = aws_kms_key.main.arn
}

output "loader_layer_arn" {
  description = "The layer of the loader function's third-party packages (make layer)."
  value       = aws_lambda_layer_version.loader_packages.arn
}

output "small_file_bytes" {
  description = "Files under this size load in the loader function; bigger ones in Glue."
  value       = var.small_file_bytes
}
