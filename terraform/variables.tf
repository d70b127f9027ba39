# ---------------------------------------------------------------------------------------------
# Naming
# ---------------------------------------------------------------------------------------------

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (bucket, tables, job, functions, roles, topic); one pipeline per prefix."
  default     = "dynamo-ingest"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lower-case letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource (added to the provider's default tags)."
  default     = {}
}

# ---------------------------------------------------------------------------------------------
# The bucket and its folders
# ---------------------------------------------------------------------------------------------

variable "bucket_name" {
  type        = string
  description = "Name of the bucket that receives the CSV files; null means <name_prefix>-<account id>-<region>."
  default     = null
}

variable "incoming_prefix" {
  type        = string
  description = "Folder that CSV files are uploaded to; an upload here starts a load."
  default     = "incoming/"

  validation {
    condition     = can(regex("^[^/].*/$", var.incoming_prefix))
    error_message = "incoming_prefix must be a folder such as \"incoming/\": not starting with '/', ending with '/'."
  }
}

variable "complete_prefix" {
  type        = string
  description = "Folder that loaded files are moved to."
  default     = "complete/"

  validation {
    condition     = can(regex("^[^/].*/$", var.complete_prefix))
    error_message = "complete_prefix must be a folder such as \"complete/\": not starting with '/', ending with '/'."
  }
}

variable "error_prefix" {
  type        = string
  description = "Folder that files whose load failed are moved to, with their error report and rejected rows."
  default     = "error/"

  validation {
    condition     = can(regex("^[^/].*/$", var.error_prefix))
    error_message = "error_prefix must be a folder such as \"error/\": not starting with '/', ending with '/'."
  }
}

variable "complete_retention_days" {
  type        = number
  description = "Days a loaded file stays in the complete/ folder before S3 expires it."
  default     = 90

  validation {
    condition     = var.complete_retention_days >= 1
    error_message = "complete_retention_days must be at least 1."
  }
}

variable "error_retention_days" {
  type        = number
  description = "Days a failed file, its error report and its rejected rows stay in the error/ folder."
  default     = 365

  validation {
    condition     = var.error_retention_days >= 1
    error_message = "error_retention_days must be at least 1."
  }
}

variable "noncurrent_version_retention_days" {
  type        = number
  description = "Days S3 keeps an overwritten or deleted version (the bucket is versioned) before removing it."
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1
    error_message = "noncurrent_version_retention_days must be at least 1."
  }
}

# ---------------------------------------------------------------------------------------------
# DynamoDB
# ---------------------------------------------------------------------------------------------

variable "target_table_name" {
  type        = string
  description = "The DynamoDB table the rows are written to: an existing table, or the one created when create_target_table is true."
}

variable "create_target_table" {
  type        = bool
  description = "true: create target_table_name (on-demand, PITR, encrypted with this stack's key); false: use an existing table of that name."
  default     = false
}

variable "partition_key" {
  type        = string
  description = "Partition key attribute of the target table (a column of the CSV files)."
}

variable "partition_key_type" {
  type        = string
  description = "DynamoDB type of the partition key when the table is created here: S, N or B."
  default     = "S"

  validation {
    condition     = contains(["S", "N", "B"], var.partition_key_type)
    error_message = "partition_key_type must be S, N or B."
  }
}

variable "sort_key" {
  type        = string
  description = "Sort key attribute of the target table; null when the table has none."
  default     = null
}

variable "sort_key_type" {
  type        = string
  description = "DynamoDB type of the sort key when the table is created here: S, N or B."
  default     = "S"

  validation {
    condition     = contains(["S", "N", "B"], var.sort_key_type)
    error_message = "sort_key_type must be S, N or B."
  }
}

variable "target_table_kms_key_arn" {
  type        = string
  description = "ARN of the customer managed KMS key of an existing target table, if it has one (the job role gets use of it); null otherwise."
  default     = null
}

variable "ledger_table_name" {
  type        = string
  description = "Name of the ledger (control) table; null means <name_prefix>-ledger."
  default     = null
}

# ---------------------------------------------------------------------------------------------
# Glue
# ---------------------------------------------------------------------------------------------

variable "catalog_database_name" {
  type        = string
  description = "Glue Data Catalog database the crawler registers the CSV layout in; null means <name_prefix> with '_' for '-'."
  default     = null
}

variable "catalog_table_name" {
  type        = string
  description = "Catalog table the job reads the layout from (the crawler names it after the crawled folder, with the crawler's table prefix)."
  default     = null
}

variable "glue_worker_type" {
  type        = string
  description = "Glue worker type of the job (G.1X = 4 vCPU/16 GB, G.2X = 8 vCPU/32 GB, …)."
  default     = "G.1X"

  validation {
    condition     = can(regex("^[GR]\\.[0-9]+X$", var.glue_worker_type)) && var.glue_worker_type != "G.025X"
    error_message = "glue_worker_type must be a Glue 5.0 Spark worker type such as G.1X or G.2X (G.025X is for streaming)."
  }
}

variable "glue_number_of_workers" {
  type        = number
  description = "Workers per job run (one is the driver); the write rate, not Spark, is usually the limit."
  default     = 2

  validation {
    condition     = var.glue_number_of_workers >= 2
    error_message = "glue_number_of_workers must be at least 2 (Glue's minimum for Spark jobs)."
  }
}

variable "glue_timeout_minutes" {
  type        = number
  description = "Minutes after which Glue stops a run (TIMEOUT); the callback then resumes it from its checkpoints."
  default     = 120

  validation {
    condition     = var.glue_timeout_minutes >= 1 && var.glue_timeout_minutes <= 10080
    error_message = "glue_timeout_minutes must be between 1 and 10080."
  }
}

variable "glue_max_concurrent_runs" {
  type        = number
  description = "How many files load at the same time (Glue MaxConcurrentRuns); more starts fail with ConcurrentRunsExceededException and are retried."
  default     = 3

  validation {
    condition     = var.glue_max_concurrent_runs >= 1
    error_message = "glue_max_concurrent_runs must be at least 1."
  }
}

variable "write_share" {
  type        = number
  description = "Share of the target table's write capacity the job may use when write_rate is auto (default argument --write_share)."
  default     = 0.9

  validation {
    condition     = var.write_share > 0 && var.write_share <= 1
    error_message = "write_share must be in (0, 1]."
  }
}

variable "write_rate" {
  type        = string
  description = "Write budget in WCU/s for a whole run, or auto to derive it from the table (default argument --write_rate)."
  default     = "auto"

  validation {
    condition     = var.write_rate == "auto" || can(tonumber(var.write_rate))
    error_message = "write_rate must be auto or a number of WCU/s."
  }
}

# ---------------------------------------------------------------------------------------------
# Lambda
# ---------------------------------------------------------------------------------------------

variable "lambda_runtime" {
  type        = string
  description = "Python runtime of the functions (the loader's layer is built for it: `make layer LAMBDA_PYTHON=3.x`)."
  default     = "python3.12"

  validation {
    condition     = contains(["python3.11", "python3.12", "python3.13"], var.lambda_runtime)
    error_message = "lambda_runtime must be python3.11, python3.12 or python3.13."
  }
}

variable "trigger_timeout_seconds" {
  type        = number
  description = "Timeout of the trigger function (a few ledger writes and one StartJobRun per record)."
  default     = 60
}

variable "callback_timeout_seconds" {
  type        = number
  description = "Timeout of the callback function; moving a multi-GB file with the managed copy takes minutes."
  default     = 900

  validation {
    condition     = var.callback_timeout_seconds >= 30 && var.callback_timeout_seconds <= 900
    error_message = "callback_timeout_seconds must be between 30 and 900."
  }
}

variable "trigger_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the trigger function (-1 for none: accounts with the default concurrency quota of 10 cannot reserve any)."
  default     = 5
}

variable "callback_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the callback function (-1 for none)."
  default     = 5
}

# The Lambda path: files under small_file_bytes load in the loader function with the in-process
# engine (no Glue start-up, no one-minute minimum); bigger ones, in Glue.

variable "small_file_bytes" {
  type        = number
  description = "Files smaller than this (bytes; a compressed file counts as its estimated uncompressed size) load in the loader function instead of a Glue run; 0 sends every file to Glue."
  default     = 16777216

  validation {
    condition     = var.small_file_bytes >= 0 && floor(var.small_file_bytes) == var.small_file_bytes
    error_message = "small_file_bytes must be a whole number of bytes, 0 or more (0: every file loads in Glue)."
  }
}

variable "loader_memory_mb" {
  type        = number
  description = "Memory of the loader function; vCPUs scale with it (3008 MB = 2 vCPUs, which the in-process engine uses both of)."
  default     = 3008

  validation {
    condition     = var.loader_memory_mb >= 1024 && var.loader_memory_mb <= 10240
    error_message = "loader_memory_mb must be between 1024 and 10240 (Lambda's maximum)."
  }
}

variable "loader_timeout_seconds" {
  type        = number
  description = "Timeout of one loader invocation; a load nearing it checkpoints and continues in a fresh invocation."
  default     = 900

  validation {
    condition     = var.loader_timeout_seconds >= 120 && var.loader_timeout_seconds <= 900
    error_message = "loader_timeout_seconds must be between 120 and 900 (Lambda's maximum)."
  }
}

variable "loader_deadline_margin_seconds" {
  type        = number
  description = "Seconds before the loader's timeout at which a load stops at a checkpoint and hands the file on to a fresh invocation."
  default     = 60

  validation {
    condition     = var.loader_deadline_margin_seconds >= 10 && var.loader_deadline_margin_seconds <= 300
    error_message = "loader_deadline_margin_seconds must be between 10 and 300."
  }
}

variable "loader_max_continuations" {
  type        = number
  description = "Fresh invocations one load may continue in after nearing the deadline; past them the file fails (a file that big belongs in Glue: lower small_file_bytes)."
  default     = 20

  validation {
    condition     = var.loader_max_continuations >= 0 && var.loader_max_continuations <= 100
    error_message = "loader_max_continuations must be between 0 and 100."
  }
}

variable "loader_ephemeral_storage_mb" {
  type        = number
  description = "/tmp of the loader function: it holds the staged file, the engine's sort spill (about the file's size) and the rejects parts."
  default     = 2048

  validation {
    condition     = var.loader_ephemeral_storage_mb >= 512 && var.loader_ephemeral_storage_mb <= 10240
    error_message = "loader_ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "loader_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the loader function (-1 for none); also the most small files loading at once."
  default     = 5

  validation {
    condition     = var.loader_reserved_concurrency == -1 || var.loader_reserved_concurrency >= 1
    error_message = "loader_reserved_concurrency must be -1 (none) or at least 1 (0 would stop every small file)."
  }
}

variable "async_max_retry_attempts" {
  type        = number
  description = "Times Lambda retries a failed asynchronous invocation (S3 notification, Glue state change) before it goes to the function's failed-events queue."
  default     = 2

  validation {
    condition     = var.async_max_retry_attempts >= 0 && var.async_max_retry_attempts <= 2
    error_message = "async_max_retry_attempts must be 0, 1 or 2."
  }
}

variable "async_max_event_age_seconds" {
  type        = number
  description = "Oldest event Lambda still retries (throttled events wait this long at most) before it goes to the failed-events queue."
  default     = 21600

  validation {
    condition     = var.async_max_event_age_seconds >= 60 && var.async_max_event_age_seconds <= 21600
    error_message = "async_max_event_age_seconds must be between 60 and 21600."
  }
}

variable "max_attempts" {
  type        = number
  description = "Glue runs per file, the first included; the callback resumes a failed run until this many have run."
  default     = 3

  validation {
    condition     = var.max_attempts >= 1
    error_message = "max_attempts must be at least 1."
  }
}

# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------

variable "log_retention_days" {
  type        = number
  description = "Retention of every log group this stack creates."
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be one of CloudWatch Logs' retention values (1, 3, 5, 7, 14, 30, 60, 90, … 3653)."
  }
}

variable "alarm_email" {
  type        = string
  description = "E-mail address subscribed to the notification topic (failures, rejected rows, alarms); null for none. The address must confirm the subscription."
  default     = null
}

variable "kms_key_deletion_window_days" {
  type        = number
  description = "Waiting period before the stack's KMS key is deleted after terraform destroy."
  default     = 30

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "kms_key_deletion_window_days must be between 7 and 30."
  }
}

variable "upload_order" {
  type        = string
  description = "How files of the table are ordered: serial (one at a time, in upload order: the table equals applying them one after another) or parallel (up to table_max_loads at once: only for files whose keys never overlap or that carry --version_column)."
  default     = "serial"

  validation {
    condition     = contains(["serial", "parallel"], var.upload_order)
    error_message = "upload_order must be serial or parallel."
  }
}

variable "table_max_loads" {
  type        = number
  description = "Files of the table loading at once under the parallel upload order (Glue's own limit, glue_max_concurrent_runs, applies too); they share the table's write budget."
  default     = 3

  validation {
    condition     = var.table_max_loads >= 1
    error_message = "table_max_loads must be at least 1."
  }
}

variable "dispatch_sweep_minutes" {
  type        = number
  description = "Minutes between the dispatcher's scheduled sweeps (the safety net that starts queued files nothing else started)."
  default     = 5

  validation {
    condition     = var.dispatch_sweep_minutes >= 1
    error_message = "dispatch_sweep_minutes must be at least 1."
  }
}

variable "sweep_grace_seconds" {
  type        = number
  description = "How long an upload under incoming/ may wait for its S3 event before the sweep queues it itself."
  default     = 300
}
