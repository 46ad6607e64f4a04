output "vpc_id" {
  value = aws_vpc.this.id
}

output "vpc_cidr" {
  value = aws_vpc.this.cidr_block
}

output "azs" {
  value = local.azs
}

output "private_subnet_ids" {
  description = "One per zone, in the order of azs."
  value       = aws_subnet.private[*].id
}

output "intra_subnet_ids" {
  value = aws_subnet.intra[*].id
}

output "public_subnet_ids" {
  value = aws_subnet.public[*].id
}
