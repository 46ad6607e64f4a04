variable "name" {
  description = "Name prefix of every resource, e.g. cofre-prod."
  type        = string
}

variable "cidr" {
  description = "The VPC's CIDR (a /16); the Kubernetes overlay's NetworkPolicies use the same."
  type        = string
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
