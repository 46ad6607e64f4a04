output "cluster_name" {
  value = module.eks.cluster_name
}

output "vpc_cidr" {
  description = "allow-aws-datastores CIDR in the overlay."
  value       = module.network.vpc_cidr
}

output "msk_bootstrap_brokers_sasl_scram" {
  description = "COFRE_KAFKA_BROKERS in the overlay's patch-env.yaml."
  value       = module.msk.bootstrap_brokers_sasl_scram
}

output "irsa_role_arns" {
  description = "The overlay's patch-irsa.yaml."
  value       = module.irsa.role_arns
}

output "ecr_repository_urls" {
  value = module.ecr.repository_urls
}

output "github_deploy_role_arn" {
  value = module.github.role_arn
}

output "rds_bootstrap_sql" {
  sensitive = true
  value     = module.rds.bootstrap_sql
}
