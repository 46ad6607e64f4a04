variable "name" {
  type = string
}

variable "vpc_id" {
  type = string
}

variable "subnet_ids" {
  description = "One subnet per availability zone (three)."
  type        = list(string)
}

variable "client_security_group_id" {
  description = "The security group of the clients (the EKS cluster security group)."
  type        = string
}

variable "kafka_version" {
  type    = string
  default = "3.6.0"
}

variable "instance_type" {
  type    = string
  default = "kafka.m5.large"
}

variable "volume_size_gb" {
  type    = number
  default = 500
}

variable "users" {
  description = "SCRAM users, one per service (cofre-<user>)."
  type        = list(string)
  default     = ["core", "auth", "audit", "legacy"]
}

variable "tags" {
  type    = map(string)
  default = {}
}
