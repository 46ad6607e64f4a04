variable "name" {
  type = string
}

variable "bucket" {
  type = string
}

variable "lock_table" {
  type    = string
  default = "cofre-tfstate-lock"
}

variable "tags" {
  type    = map(string)
  default = {}
}
