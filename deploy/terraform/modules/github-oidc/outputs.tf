output "role_arn" {
  description = "role-to-assume of aws-actions/configure-aws-credentials in the workflow."
  value       = aws_iam_role.deploy.arn
}
