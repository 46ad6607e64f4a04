variable "name" {
  description = "Cluster name, e.g. cofre-prod."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version (the manifests need >= 1.30: preStop sleep)."
  type        = string
  default     = "1.31"
}

variable "azs" {
  description = "The three availability zones, in the order of subnet_ids."
  type        = list(string)
}

variable "subnet_ids" {
  description = "Private subnets, one per zone: one managed node group each."
  type        = list(string)
  validation {
    condition     = length(var.subnet_ids) == 3
    error_message = "cofre runs over exactly three availability zones."
  }
}

variable "public_access_cidrs" {
  description = "CIDRs allowed to reach the public API endpoint; empty keeps it private."
  type        = list(string)
  default     = []
}

variable "node_instance_types" {
  type    = list(string)
  default = ["m6i.large"]
}

variable "nodes_per_zone_min" {
  type    = number
  default = 1
}

variable "nodes_per_zone_max" {
  type    = number
  default = 5
}

variable "admin_role_arns" {
  description = "IAM roles given cluster-admin through EKS access entries."
  type        = list(string)
  default     = []
}

variable "tags" {
  type    = map(string)
  default = {}
}
