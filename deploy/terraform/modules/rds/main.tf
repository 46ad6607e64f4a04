# RDS PostgreSQL, Multi-AZ (a synchronous standby in another zone, automatic failover), in the
# intra subnets, reachable from the EKS nodes only, TLS enforced (rds.force_ssl), encrypted
# with a customer key, 35-day point-in-time recovery in prod, deletion protection, the master
# password managed by RDS in Secrets Manager. Each service gets its own database and role: their
# credentials are written to Secrets Manager as cofre/<service>/db (JSON: host, port, dbname,
# username, password) for the External Secrets Operator; the roles themselves are created once
# with the bootstrap SQL output (see deploy/terraform/README.md).

resource "aws_kms_key" "rds" {
  description         = "${var.name} RDS data and service database secrets"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_db_subnet_group" "this" {
  name       = var.name
  subnet_ids = var.subnet_ids
  tags       = var.tags
}

resource "aws_security_group" "rds" {
  name        = "${var.name}-rds"
  description = "PostgreSQL from the EKS nodes only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "rds_from_eks" {
  security_group_id            = aws_security_group.rds.id
  referenced_security_group_id = var.client_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
  description                  = "PostgreSQL from EKS"
}

resource "aws_db_parameter_group" "this" {
  name   = var.name
  family = "postgres15"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "500"
  }
  parameter {
    name  = "log_connections"
    value = "1"
  }
  parameter {
    name  = "log_disconnections"
    value = "1"
  }
  parameter {
    name         = "shared_preload_libraries"
    value        = "pg_stat_statements"
    apply_method = "pending-reboot"
  }
  tags = var.tags
}

resource "aws_db_instance" "this" {
  identifier                            = var.name
  engine                                = "postgres"
  engine_version                        = var.engine_version
  instance_class                        = var.instance_class
  allocated_storage                     = var.storage_gb
  max_allocated_storage                 = var.storage_gb * 4
  storage_type                          = "gp3"
  storage_encrypted                     = true
  kms_key_id                            = aws_kms_key.rds.arn
  multi_az                              = true
  db_name                               = "postgres"
  username                              = "cofre_admin"
  manage_master_user_password           = true
  iam_database_authentication_enabled   = true
  db_subnet_group_name                  = aws_db_subnet_group.this.name
  vpc_security_group_ids                = [aws_security_group.rds.id]
  parameter_group_name                  = aws_db_parameter_group.this.name
  backup_retention_period               = var.backup_retention_days
  backup_window                         = "02:00-03:00"
  maintenance_window                    = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot                 = true
  deletion_protection                   = true
  skip_final_snapshot                   = false
  final_snapshot_identifier             = "${var.name}-final"
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.rds.arn
  performance_insights_retention_period = 7
  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  auto_minor_version_upgrade            = true
  publicly_accessible                   = false
  ca_cert_identifier                    = "rds-ca-rsa2048-g1"
  tags                                  = var.tags
}

resource "random_password" "service" {
  for_each = toset(var.services)
  length   = 40
  special  = false
}

resource "aws_secretsmanager_secret" "service" {
  for_each   = toset(var.services)
  name       = "cofre/${each.value}/db"
  kms_key_id = aws_kms_key.rds.arn
  tags       = var.tags
}

resource "aws_secretsmanager_secret_version" "service" {
  for_each  = toset(var.services)
  secret_id = aws_secretsmanager_secret.service[each.value].id
  secret_string = jsonencode({
    host     = aws_db_instance.this.address
    port     = tostring(aws_db_instance.this.port)
    dbname   = "cofre_${each.value}"
    username = "cofre_${each.value}"
    password = random_password.service[each.value].result
  })
}

# The RDS CA bundle, for sslmode=verify-full in the services (public data, fetched at plan).
data "http" "rds_ca" {
  url = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
}

resource "aws_secretsmanager_secret" "rds_ca" {
  name       = "cofre/rds-ca"
  kms_key_id = aws_kms_key.rds.arn
  tags       = var.tags
}

resource "aws_secretsmanager_secret_version" "rds_ca" {
  secret_id     = aws_secretsmanager_secret.rds_ca.id
  secret_string = data.http.rds_ca.response_body
}
