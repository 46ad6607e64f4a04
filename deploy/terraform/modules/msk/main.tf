# MSK: three brokers, one per availability zone, Kafka with TLS in transit and SASL/SCRAM
# client authentication (one user per service, its secret in Secrets Manager under the
# AmazonMSK_ prefix MSK requires, encrypted with a customer key), encryption at rest, broker
# logs to CloudWatch. Topics are created with 12 partitions and replication 3, min ISR 2, so
# acks=all survives the loss of one zone.

resource "aws_kms_key" "msk" {
  description         = "${var.name} MSK data and SCRAM secrets"
  enable_key_rotation = true
  tags                = var.tags
}

resource "aws_security_group" "msk" {
  name        = "${var.name}-msk"
  description = "MSK brokers: SASL/SCRAM over TLS from the EKS nodes only"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "msk_from_eks" {
  security_group_id            = aws_security_group.msk.id
  referenced_security_group_id = var.client_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 9096
  to_port                      = 9096
  description                  = "SASL/SCRAM over TLS from EKS"
}

resource "aws_msk_configuration" "this" {
  name           = var.name
  kafka_versions = [var.kafka_version]
  server_properties = join("\n", [
    "auto.create.topics.enable=false",
    "default.replication.factor=3",
    "min.insync.replicas=2",
    "num.partitions=12",
    "unclean.leader.election.enable=false",
    "log.retention.hours=168",
  ])
}

resource "aws_cloudwatch_log_group" "msk" {
  name              = "/cofre/${var.name}/msk"
  retention_in_days = 90
  tags              = var.tags
}

resource "aws_msk_cluster" "this" {
  cluster_name           = var.name
  kafka_version          = var.kafka_version
  number_of_broker_nodes = 3

  broker_node_group_info {
    instance_type   = var.instance_type
    client_subnets  = var.subnet_ids
    security_groups = [aws_security_group.msk.id]
    storage_info {
      ebs_storage_info {
        volume_size = var.volume_size_gb
      }
    }
  }

  configuration_info {
    arn      = aws_msk_configuration.this.arn
    revision = aws_msk_configuration.this.latest_revision
  }

  client_authentication {
    sasl {
      scram = true
    }
  }

  encryption_info {
    encryption_at_rest_kms_key_arn = aws_kms_key.msk.arn
    encryption_in_transit {
      client_broker = "TLS"
      in_cluster    = true
    }
  }

  logging_info {
    broker_logs {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.msk.name
      }
    }
  }

  tags = var.tags
}

resource "random_password" "scram" {
  for_each = toset(var.users)
  length   = 40
  special  = false
}

resource "aws_secretsmanager_secret" "scram" {
  for_each   = toset(var.users)
  name       = "AmazonMSK_cofre/${each.value}/kafka"
  kms_key_id = aws_kms_key.msk.arn
  tags       = var.tags
}

resource "aws_secretsmanager_secret_version" "scram" {
  for_each  = toset(var.users)
  secret_id = aws_secretsmanager_secret.scram[each.value].id
  secret_string = jsonencode({
    username = "cofre-${each.value}"
    password = random_password.scram[each.value].result
  })
}

resource "aws_msk_scram_secret_association" "this" {
  cluster_arn     = aws_msk_cluster.this.arn
  secret_arn_list = [for s in aws_secretsmanager_secret.scram : s.arn]
  depends_on      = [aws_secretsmanager_secret_version.scram]
}
