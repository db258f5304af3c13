output "function_arn" {
  description = "The indexer function's ARN."
  value       = aws_lambda_function.indexer.arn
}

output "role_arn" {
  description = "The indexer's role."
  value       = aws_iam_role.indexer.arn
}
