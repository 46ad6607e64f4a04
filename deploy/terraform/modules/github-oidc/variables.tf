variable "name" {
  type = string
}

variable "repository" {
  description = "owner/name of the GitHub repository whose workflows may assume the role."
  type        = string
}

variable "github_environment" {
  description = "The GitHub environment the deploying job runs in (staging or production)."
  type        = string
}

variable "create_provider" {
  description = "Create GitHub's OIDC provider in this account (once per account)."
  type        = bool
  default     = true
}

variable "provider_arn" {
  description = "An existing GitHub OIDC provider, when create_provider is false."
  type        = string
  default     = ""
}

variable "ecr_repository_arns" {
  type = list(string)
}

variable "cluster_name" {
  type = string
}

variable "cluster_arn" {
  type = string
}

variable "namespace" {
  type    = string
  default = "cofre"
}

variable "tags" {
  type    = map(string)
  default = {}
}
