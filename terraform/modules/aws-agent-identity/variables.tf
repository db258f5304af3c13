variable "cluster" {
  description = "The cluster's name in Outpost (the agent's --cluster)."
  type        = string
}

variable "bucket" {
  description = "The bucket's name."
  type        = string
}

variable "prefix" {
  description = "The bucket URL's prefix (s3://<bucket>/<prefix>), empty for none."
  type        = string
  default     = ""
}

variable "kms_key_arn" {
  description = "The bucket's KMS key when it uses SSE-KMS (aws-bucket's kms_key_arn output), else null."
  type        = string
  default     = null
}

variable "namespace" {
  description = "The agent's namespace."
  type        = string
  default     = "outpost"
}

variable "service_account" {
  description = "The agent's ServiceAccount."
  type        = string
  default     = "outpost-agent"
}

variable "oidc_provider_arn" {
  description = "For IRSA: the ARN of the cluster's IAM OIDC provider (arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<id>)."
  type        = string
  default     = null
  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN (arn:aws:iam::<account>:oidc-provider/<issuer without https://>)."
  }
}

variable "eks_cluster_name" {
  description = "For EKS Pod Identity: the EKS cluster's name; the module then also creates the pod identity association."
  type        = string
  default     = null
}

variable "role_name" {
  description = "The role's name (default outpost-agent-<cluster>)."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "A permissions boundary for the role, if the account requires one."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for the role and the association."
  type        = map(string)
  default     = {}
}
