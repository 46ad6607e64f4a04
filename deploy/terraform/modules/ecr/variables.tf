variable "images" {
  description = "Service images, one repository each (cofre/<image>)."
  type        = list(string)
  default     = ["cofre-core", "cofre-auth", "cofre-audit", "cofre-legacy", "cofre-legacy-sim"]
}

variable "tags" {
  type    = map(string)
  default = {}
}
