output "bootstrap_brokers_sasl_scram" {
  description = "COFRE_KAFKA_BROKERS of the Kubernetes overlay."
  value       = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
}

output "kms_key_arn" {
  value = aws_kms_key.msk.arn
}

output "scram_secret_arns" {
  value = { for k, s in aws_secretsmanager_secret.scram : k => s.arn }
}
