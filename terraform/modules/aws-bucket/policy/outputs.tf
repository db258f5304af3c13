output "json" {
  description = "The bucket policy, as JSON."
  value       = jsonencode({ Version = "2012-10-17", Statement = local.statements })
}
