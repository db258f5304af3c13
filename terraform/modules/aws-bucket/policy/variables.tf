variable "bucket" {
  description = "The bucket's name."
  type        = string
}

variable "prefix" {
  description = "The bucket URL's prefix (s3://<bucket>/<prefix>), empty for none."
  type        = string
  default     = ""
}

variable "agent_role_pattern" {
  description = "An ARN pattern that matches every agent role and nothing else (aws-agent-identity names them outpost-agent-<cluster>)."
  type        = string
}

variable "admin_role_arns" {
  description = "ARN patterns of the principals that may still delete objects (empty: nobody; lifecycle rules expire segments regardless)."
  type        = list(string)
  default     = []
}

variable "partition" {
  description = "The AWS partition: aws, aws-cn or aws-us-gov."
  type        = string
  default     = "aws"
}
