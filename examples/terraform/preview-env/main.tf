# A provider-free module (variables, locals, outputs only), so the demo applies and
# destroys offline. Statewright writes statewright.auto.tfvars.json with stack_id (the
# machine id), the machine's metadata, then the task's variables.

variable "stack_id" {
  type        = string
  description = "the machine id"
}

variable "owner" {
  type        = string
  default     = "nobody"
  description = "from the machine's metadata"
}

variable "replicas" {
  type    = number
  default = 1
}

locals {
  name = "preview-${lower(var.stack_id)}"
}

output "name" {
  value = local.name
}

output "owner" {
  value = var.owner
}

output "replicas" {
  value = var.replicas
}

output "instances" {
  value = [for i in range(var.replicas) : "${local.name}-${i}"]
}

# A secret the environment hands out: Statewright never stores, logs or returns a
# sensitive output; the task record names it in redacted_outputs instead.
output "admin_token" {
  value     = sha256("${var.stack_id}-admin")
  sensitive = true
}
