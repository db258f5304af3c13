output "json" {
  description = "The policy document, as JSON."
  value       = jsonencode({ Version = "2012-10-17", Statement = local.statements })
}

output "cluster_prefix" {
  description = "The key prefix this cluster's agent may write, without the bucket."
  value       = "${local.cluster_dir}/"
}
