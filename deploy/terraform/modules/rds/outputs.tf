output "address" {
  value = aws_db_instance.this.address
}

output "kms_key_arn" {
  value = aws_kms_key.rds.arn
}

output "master_user_secret_arn" {
  value = aws_db_instance.this.master_user_secret[0].secret_arn
}

output "service_secret_arns" {
  value = { for k, s in aws_secretsmanager_secret.service : k => s.arn }
}

output "rds_ca_secret_arn" {
  value = aws_secretsmanager_secret.rds_ca.arn
}

# Run once as cofre_admin (see README): one database and login role per service. cofre-audit's
# role may only INSERT and SELECT its records (the audit issue's migrations grant that).
output "bootstrap_sql" {
  sensitive = true
  value = join("\n", flatten([for s in var.services : [
    "CREATE ROLE cofre_${s} LOGIN PASSWORD '${random_password.service[s].result}';",
    "CREATE DATABASE cofre_${s} OWNER cofre_${s};",
    "REVOKE ALL ON DATABASE cofre_${s} FROM PUBLIC;",
  ]]))
}
