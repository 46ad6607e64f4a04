output "role_arns" {
  description = "eks.amazonaws.com/role-arn of each ServiceAccount (the overlays' patch-irsa.yaml)."
  value       = { for k, r in aws_iam_role.service : k => r.arn }
}
