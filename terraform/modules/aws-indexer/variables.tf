variable "name" {
  description = "The function's name (also its role's and log group's)."
  type        = string
  default     = "outpost-indexer"
}

variable "zip_path" {
  description = "The zip `just lambda-zip` builds (target/lambda/outpost-lambda.zip)."
  type        = string
}

variable "bucket" {
  description = "The bucket's name (aws-bucket's bucket output)."
  type        = string
}

variable "bucket_prefix" {
  description = "The bucket URL's prefix, empty for none."
  type        = string
  default     = ""
}

variable "bucket_url" {
  description = "The bucket URL (aws-bucket's url output)."
  type        = string
}

variable "bucket_kms_key_arn" {
  description = "The bucket's KMS key (aws-bucket's kms_key_arn output), or null for SSE-S3."
  type        = string
  default     = null
}

variable "bucket_account_id" {
  description = "The account that owns the bucket, for the notification permission's source_account (default: any; set it)."
  type        = string
  default     = null
}

variable "database_url_secret_arn" {
  description = "A Secrets Manager secret holding the database URL (postgres://… or mysql://…) or the JSON of an RDS secret that names its database (engine, host, port, username, password, dbname; RDS's managed master-user secret holds only the user and password, so it is refused). The user needs write access to Clouddriver's cats tables and Outpost's own."
  type        = string
}

variable "secret_kms_key_arn" {
  description = "The KMS key of that secret, if it is not the AWS-managed one."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Subnets that reach the database (and S3, through a gateway endpoint or NAT)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups that the database admits."
  type        = list(string)
}

variable "schedule" {
  description = "How often every cluster is indexed (an EventBridge schedule expression)."
  type        = string
  default     = "rate(1 minute)"
}

variable "s3_notifications" {
  description = "Also index a cluster as soon as its head or decommission marker is written. The bucket's notification configuration then belongs to this module."
  type        = bool
  default     = true
}

variable "account_template" {
  description = "The account template (YAML, docs/CLOUDDRIVER.md \"Accounts that register themselves\"), or null to register no accounts."
  type        = string
  default     = null
}

variable "memory_mb" {
  description = "The function's memory: a run holds one large snapshot at a time (BENCHMARKS.md, indexer peak memory)."
  type        = number
  default     = 1024
}

variable "timeout_seconds" {
  description = "The longest a run may take; a run cut short is taken up by the next one."
  type        = number
  default     = 300
}

variable "max_concurrent_runs" {
  description = "Reserved concurrency: overlapping runs are safe (per-cluster locks) but share the database."
  type        = number
  default     = 4
}

variable "log_retention_days" {
  description = "Days the function's logs are kept."
  type        = number
  default     = 365
}

variable "logs_kms_key_arn" {
  description = "A KMS key for the log group, or null for CloudWatch's own encryption."
  type        = string
  default     = null
}

variable "environment_kms_key_arn" {
  description = "A KMS key for the function's environment (it holds no secret: the database URL stays in Secrets Manager), or null for Lambda's own."
  type        = string
  default     = null
}

variable "extra_environment" {
  description = "More OUTPOST_* settings of `outpost index` (e.g. OUTPOST_STALE_AFTER, OUTPOST_EVICT_AFTER, OUTPOST_CLAIM_POLICY)."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_arn" {
  description = "A permissions boundary for the role, if the account requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource that takes them."
  type        = map(string)
  default     = {}
}
