# Run once per AWS account, with local state, before the environment root: creates the S3
# bucket and DynamoDB lock table that the environment's backend "s3" block uses.
#   terraform -chdir=deploy/terraform/envs/bootstrap apply -var account_id=... -var env=...
terraform {
  required_version = ">= 1.6"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
}

variable "account_id" {
  type = string
}

variable "env" {
  type = string
}

variable "region" {
  type    = string
  default = "eu-west-1"
}

provider "aws" {
  region              = var.region
  allowed_account_ids = [var.account_id]
  default_tags {
    tags = { project = "cofre", env = var.env, managed-by = "terraform" }
  }
}

module "state" {
  source = "../../modules/state-backend"
  name   = "cofre-${var.env}"
  bucket = "cofre-${var.env}-tfstate-${var.account_id}"
}

output "backend" {
  value = {
    bucket         = module.state.bucket
    dynamodb_table = module.state.lock_table
    kms_key_id     = module.state.kms_key_arn
  }
}
