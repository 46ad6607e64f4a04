variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "The intra subnets, one per zone."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "The EKS cluster security group."
  type        = string
}

variable "engine_version" {
  type    = string
  default = "15.8"
}

variable "instance_class" {
  type    = string
  default = "db.r6g.large"
}

variable "storage_gb" {
  type    = number
  default = 100
}

variable "backup_retention_days" {
  type    = number
  default = 35
}

variable "services" {
  description = "One database and role per service (cofre_<service>)."
  type        = list(string)
  default     = ["core", "auth", "audit", "legacy"]
}

variable "tags" {
  type    = map(string)
  default = {}
}
