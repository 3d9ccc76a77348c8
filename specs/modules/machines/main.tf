# preview-env's machines, shipped with the specs (a `local` source: in AWS, the CodeBuild
# project reads it from the deployed specs/ asset). It declares no provider, so it
# applies and destroys anywhere Terraform runs; replace it with the module that really
# manages your machines. Statewright writes statewright.auto.tfvars.json with stack_id
# (the machine id), the machine's metadata, then the task's variables.

variable "stack_id" {
  type        = string
  description = "the machine id"
}

variable "desired_capacity" {
  type    = number
  default = 1
}

output "machines" {
  value = [for i in range(var.desired_capacity) : "${var.stack_id}-${i}"]
}
