output "objects" {
  description = "The Deployment, Service and PodDisruptionBudget."
  value       = local.objects
}

output "secrets" {
  description = "The gateway's Secret and the Secret Clouddriver mounts."
  value       = local.secrets
  sensitive   = true
}

output "yaml" {
  description = "Every object, Secrets first, as one multi-document YAML stream."
  value       = join("---\n", [for o in concat(local.secrets, local.objects) : yamlencode(o)])
  sensitive   = true
}

output "url" {
  description = "The gateway's URL inside the cluster; an account's server is <url>/clusters/<account>."
  value       = local.url
}

output "client_secret" {
  description = "The Secret Clouddriver mounts (keys token and ca.crt)."
  value       = "${local.name}-client"
}
