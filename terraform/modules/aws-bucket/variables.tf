variable "name" {
  description = "The bucket's name."
  type        = string
}

variable "prefix" {
  description = "The prefix under which Outpost's keys live (s3://<bucket>/<prefix>), empty for none; the same for every agent and the indexer."
  type        = string
  default     = ""
}

variable "kms" {
  description = "Encryption: \"none\" for SSE-S3, \"create\" for a new customer-managed KMS key, or the ARN of an existing KMS key."
  type        = string
  default     = "create"
  validation {
    condition     = contains(["none", "create"], var.kms) || can(regex("^arn:aws[a-z-]*:kms:", var.kms))
    error_message = "kms must be \"none\", \"create\" or a KMS key ARN."
  }
}

variable "segment_expiry_days" {
  description = "Days after which a segment expires. Must exceed the agents' --snapshot-max-age (24h by default) with room for a lagging indexer."
  type        = number
  default     = 7
  validation {
    condition     = var.segment_expiry_days >= 2
    error_message = "segment_expiry_days must be at least 2: a listed snapshot may be up to --snapshot-max-age (1 day by default) old."
  }
}

variable "versioning" {
  description = "Keep object versions. Segments are never rewritten, so versions only hold overwritten identity.json and heads; off by default."
  type        = bool
  default     = false
}

variable "agent_role_pattern" {
  description = "ARN pattern of every agent role (the bucket policy confines each to the cluster its outpost-cluster tag names)."
  type        = string
  default     = "arn:aws:iam::*:role/outpost-agent-*"
}

variable "admin_role_arns" {
  description = "ARN patterns of principals that may delete objects; empty means nobody may."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags for the bucket and the key."
  type        = map(string)
  default     = {}
}

variable "access_log_bucket" {
  description = "A bucket for S3 server access logs of this bucket, or null for none."
  type        = string
  default     = null
}
