# The bucket every cluster's agent writes to and the indexer reads: private, encrypted, old
# segments expired by lifecycle while the per-cluster documents stay, and a bucket policy under
# which no agent can delete or overwrite what it wrote.

locals {
  prefix = join("/", compact(split("/", var.prefix)))
  root   = "${local.prefix == "" ? "" : "${local.prefix}/"}outpost/v1/clusters/"
}

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Access logs go to the bucket named by access_log_bucket (aws_s3_bucket_logging below); a logging bucket is the operator's to choose.
  #checkov:skip=CKV_AWS_144:No replication: the bucket is a transport, not a record; every agent writes a fresh snapshot when its chain is gone.
  #checkov:skip=CKV2_AWS_62:The notifications of written heads and decommission markers belong to aws-indexer (s3_notifications), which owns the bucket's one notification configuration.
  #checkov:skip=CKV_AWS_21:Versioning is optional (var.versioning): segments are create-only under the bucket policy, so versions would only keep old heads.
  bucket        = var.name
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

resource "aws_kms_key" "this" {
  count                   = var.kms == "create" ? 1 : 0
  description             = "Outpost bucket ${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  # The account administers the key; who may use it is said by IAM policies (each agent's
  # allows kms:GenerateDataKey and kms:Decrypt through S3 only).
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministersTheKey"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
  tags = var.tags
}

locals {
  kms_key_arn = var.kms == "create" ? aws_kms_key.this[0].arn : (var.kms == "none" ? null : var.kms)
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = local.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    bucket_key_enabled = local.kms_key_arn != null
  }
}

# Segments are create-only and never rewritten, so versions would only keep what lifecycle
# expires; versioning stays off unless the operator wants it for their own reasons.
resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = var.versioning ? "Enabled" : "Suspended"
  }
}

# Only segments expire: the agents tag each one outpost-object=segment on its put, because S3
# filters cannot match the .ndjson.zst suffix and the prefix below also holds head.json,
# identity.json and decommissioned.json (docs/FORMAT.md §7.7). The expiry must be longer than
# the agents' --snapshot-max-age (24h by default), or a listed snapshot could vanish.
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  #checkov:skip=CKV_AWS_300:S3 refuses an abort period in a rule filtered by tags; the second rule aborts incomplete uploads under the same prefix.
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "expire-old-segments"
    status = "Enabled"
    filter {
      and {
        prefix = local.root
        tags   = { "outpost-object" = "segment" }
      }
    }
    expiration {
      days = var.segment_expiry_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
  }

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = local.root
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_logging" "this" {
  count         = var.access_log_bucket == null ? 0 : 1
  bucket        = aws_s3_bucket.this.id
  target_bucket = var.access_log_bucket
  target_prefix = "s3/${var.name}/"
}

module "policy" {
  source             = "./policy"
  bucket             = var.name
  prefix             = var.prefix
  agent_role_pattern = var.agent_role_pattern
  admin_role_arns    = var.admin_role_arns
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = module.policy.json
  # The public access block must exist first, or S3 may judge the policy before it applies.
  depends_on = [aws_s3_bucket_public_access_block.this]
}
