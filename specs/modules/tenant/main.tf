# tenant-lifecycle's infrastructure, shipped with the specs (a `local` source: in AWS,
# the CodeBuild project reads it from the deployed specs/ asset). It declares no
# provider, so it applies and destroys anywhere Terraform runs; replace it with the
# module that really provisions a tenant (and grant the runner what that module manages
# in cdk.json). Statewright writes statewright.auto.tfvars.json with stack_id (the
# machine id), the machine's metadata (plan, region...), then the task's variables.

variable "stack_id" {
  type        = string
  description = "the machine id: one tenant"
}

variable "plan" {
  type        = string
  default     = "free"
  description = "from the machine's metadata (billing's ACTIVATE)"
}

variable "instance_count" {
  type    = number
  default = 1
}

variable "public" {
  type    = bool
  default = false
}

output "tenant" {
  value = {
    id        = var.stack_id
    plan      = var.plan
    instances = [for i in range(var.instance_count) : "${var.stack_id}-${i}"]
    public    = var.public
  }
}
