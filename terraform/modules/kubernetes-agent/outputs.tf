output "namespace" {
  description = "The agent's namespace."
  value       = var.namespace
}

output "service_account" {
  description = "The agent's ServiceAccount (for aws-agent-identity's trust)."
  value       = var.name
}

output "cluster_role_rules" {
  description = "What the agent may read."
  value       = module.manifests.cluster_role_rules
}
