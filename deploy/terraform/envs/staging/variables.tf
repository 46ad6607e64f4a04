variable "github_repository" {
  description = "owner/name of the repository whose pipeline deploys here."
  type        = string
}

variable "eks_admin_role_arns" {
  description = "SSO / break-glass roles with cluster-admin."
  type        = list(string)
  default     = []
}

variable "eks_public_access_cidrs" {
  description = "Who may reach the EKS API from outside the VPC (the pipeline runners)."
  type        = list(string)
  default     = []
}
