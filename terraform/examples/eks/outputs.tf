output "bucket_url" {
  description = "The bucket URL the agent writes to."
  value       = module.bucket.url
}

output "spinnaker_account" {
  description = "The Spinnaker account the cluster becomes."
  value       = "outpost-${var.outpost_cluster_name}"
}

output "clouddriver_secret" {
  description = "Mount this Secret in Clouddriver at clouddriver_mount_path."
  value       = module.gateway.clouddriver_secret
}

output "clouddriver_mount_path" {
  description = "Where Clouddriver mounts the gateway's token and CA."
  value       = module.gateway.clouddriver_mount_path
}
