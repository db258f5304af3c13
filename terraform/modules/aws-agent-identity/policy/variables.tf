variable "bucket" {
  description = "The bucket's name (not its ARN)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket))
    error_message = "bucket must be an S3 bucket name (3-63 characters of a-z, 0-9, '.', '-'), not an ARN or URL."
  }
}

variable "prefix" {
  description = "The bucket URL's prefix, as in s3://<bucket>/<prefix> (empty for none); the same value the agent's --bucket has."
  type        = string
  default     = ""
  validation {
    condition     = alltrue([for part in compact(split("/", var.prefix)) : can(regex("^[A-Za-z0-9._-]+$", part)) && part != "." && part != ".."])
    error_message = "prefix parts may hold only A-Z a-z 0-9 . _ - and may not be '.' or '..' (docs/FORMAT.md §2.2)."
  }
}

variable "cluster" {
  description = "The cluster's name: the agent's --cluster, a DNS-1123 label."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.cluster))
    error_message = "cluster must be a DNS-1123 label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."
  }
}

variable "kms_key_arn" {
  description = "The KMS key the bucket encrypts with (SSE-KMS), or null for SSE-S3."
  type        = string
  default     = null
}

variable "region" {
  description = "The bucket's region (for the kms:ViaService condition)."
  type        = string
  default     = "us-east-1"
}

variable "partition" {
  description = "The AWS partition: aws, aws-cn or aws-us-gov."
  type        = string
  default     = "aws"
}
