# IRSA: one IAM role per cofre service, assumable only by that service's Kubernetes
# ServiceAccount (system:serviceaccount:cofre:cofre-<service>) through the cluster's OIDC
# provider. Each role reads only its own secrets (cofre/<service>/*, AmazonMSK_cofre/<service>/*
# and the public RDS CA) through the External Secrets Operator's SecretStore for that service.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  secret_arn_prefix = "arn:${data.aws_partition.current.partition}:secretsmanager:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:secret"
}

resource "aws_iam_role" "service" {
  for_each = toset(var.services)
  name     = "${var.name}-${each.value}"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${var.oidc_issuer}:sub" = "system:serviceaccount:${var.namespace}:cofre-${each.value}"
          "${var.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "secrets" {
  for_each = toset(var.services)
  name     = "own-secrets"
  role     = aws_iam_role.service[each.value].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect = "Allow"
        Action = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
        Resource = [
          "${local.secret_arn_prefix}:cofre/${each.value}/*",
          "${local.secret_arn_prefix}:AmazonMSK_cofre/${each.value}/*",
          "${local.secret_arn_prefix}:cofre/rds-ca-*",
        ]
      },
      {
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = var.kms_key_arns
      },
    ]
  })
}
