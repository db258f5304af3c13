output "bucket" {
  description = "The bucket's name."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "The bucket's ARN."
  value       = aws_s3_bucket.this.arn
}

output "url" {
  description = "The bucket URL the agents and the indexer are given (--bucket)."
  value       = "s3://${aws_s3_bucket.this.id}${local.prefix == "" ? "" : "/${local.prefix}"}?region=${aws_s3_bucket.this.region}"
}

output "kms_key_arn" {
  description = "The KMS key the bucket encrypts with, or null for SSE-S3."
  value       = local.kms_key_arn
}

output "policy_json" {
  description = "The bucket policy."
  value       = module.policy.json
}
