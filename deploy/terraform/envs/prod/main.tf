# cofre's prod environment: AWS account 222222222222, eu-west-1, three availability zones. The
# Kubernetes overlay deploy/k8s/overlays/prod matches its outputs (role ARNs, VPC CIDR, MSK
# brokers). Plan and apply run in the pipeline (terraform validate too: providers cannot be
# downloaded on the development machines).

terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    http = {
      source  = "hashicorp/http"
      version = "~> 3.4"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
  }

  # Remote state with locking (the bucket and table come from envs/bootstrap).
  backend "s3" {
    bucket         = "cofre-prod-tfstate-222222222222"
    key            = "cofre/prod.tfstate"
    region         = "eu-west-1"
    dynamodb_table = "cofre-tfstate-lock"
    encrypt        = true
  }
}

locals {
  name = "cofre-prod"
  tags = { project = "cofre", env = "prod" }
}

provider "aws" {
  region              = "eu-west-1"
  allowed_account_ids = ["222222222222"]
  default_tags {
    tags = merge(local.tags, { managed-by = "terraform" })
  }
}

module "network" {
  source = "../../modules/network"
  name   = local.name
  cidr   = "10.30.0.0/16"
}

module "eks" {
  source              = "../../modules/eks"
  name                = local.name
  azs                 = module.network.azs
  subnet_ids          = module.network.private_subnet_ids
  public_access_cidrs = var.eks_public_access_cidrs
  node_instance_types = ["m6i.xlarge"]
  nodes_per_zone_min  = 2
  nodes_per_zone_max  = 8
  admin_role_arns     = var.eks_admin_role_arns
}

module "ecr" {
  source = "../../modules/ecr"
}

module "msk" {
  source                   = "../../modules/msk"
  name                     = local.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.intra_subnet_ids
  client_security_group_id = module.eks.cluster_security_group_id
  instance_type            = "kafka.m5.large"
}

module "rds" {
  source                   = "../../modules/rds"
  name                     = local.name
  vpc_id                   = module.network.vpc_id
  subnet_ids               = module.network.intra_subnet_ids
  client_security_group_id = module.eks.cluster_security_group_id
  instance_class           = "db.r6g.xlarge"
  backup_retention_days    = 35
}

module "irsa" {
  source            = "../../modules/irsa"
  name              = local.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_issuer       = module.eks.oidc_issuer
  kms_key_arns      = [module.rds.kms_key_arn, module.msk.kms_key_arn]
}

module "github" {
  source              = "../../modules/github-oidc"
  name                = local.name
  repository          = var.github_repository
  github_environment  = "production"
  ecr_repository_arns = module.ecr.repository_arns
  cluster_name        = module.eks.cluster_name
  cluster_arn         = module.eks.cluster_arn
}
