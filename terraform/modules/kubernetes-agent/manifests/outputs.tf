output "objects" {
  description = "Every object but the redaction key's Secret, in the order to apply them."
  value       = local.objects
  precondition {
    condition     = !local.watches_secrets || length(var.redaction_key) >= 32
    error_message = "Secrets are watched, so redaction_key must be set (at least 32 bytes): the agent HMACs Secret values with it."
  }
}

output "secret" {
  description = "The redaction key's Secret when Secrets are watched (a list of zero or one object)."
  value       = local.secret
  sensitive   = true
}

output "yaml" {
  description = "Every object, the Secret included, as one multi-document YAML stream (kubectl apply -f -)."
  value       = join("---\n", [for o in concat(local.secret, local.objects) : yamlencode(o)])
  sensitive   = true
}

output "cluster_role_rules" {
  description = "The ClusterRole's rules."
  value       = local.rules
}

output "decommission_cronjob" {
  description = "The name of the suspended CronJob that writes the decommission marker when a Job is created from it."
  value       = "${local.name}-decommission"
}

output "decommission_job" {
  description = "The Job the decommission CronJob would create (for a Helm pre-delete hook)."
  value = {
    apiVersion = "batch/v1"
    kind       = "Job"
    metadata   = merge(local.meta, { name = "${local.name}-decommission" })
    spec       = local.decommission_job_spec
  }
}
