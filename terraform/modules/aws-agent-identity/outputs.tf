output "role_arn" {
  description = "The role's ARN: the eks.amazonaws.com/role-arn annotation of the agent's ServiceAccount (IRSA)."
  value       = aws_iam_role.agent.arn
}

output "policy_json" {
  description = "The role's only permissions policy."
  value       = module.policy.json
}

output "cluster_prefix" {
  description = "The key prefix the agent may write."
  value       = module.policy.cluster_prefix
}
