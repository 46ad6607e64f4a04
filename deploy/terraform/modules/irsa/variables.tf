variable "name" {
  description = "Role name prefix, e.g. cofre-prod: roles are cofre-prod-core, ..."
  type        = string
}

variable "namespace" {
  type    = string
  default = "cofre"
}

variable "services" {
  type    = list(string)
  default = ["core", "auth", "audit", "legacy"]
}

variable "oidc_provider_arn" {
  type = string
}

variable "oidc_issuer" {
  description = "The cluster's OIDC issuer without https://."
  type        = string
}

variable "kms_key_arns" {
  description = "Keys that encrypt the services' secrets (RDS and MSK modules)."
  type        = list(string)
}

variable "tags" {
  type    = map(string)
  default = {}
}
