variable "name" {
  description = "The name of the gateway's objects and Service."
  type        = string
  default     = "outpost-gateway"
}

variable "namespace" {
  description = "The gateway's namespace (an existing one, usually Spinnaker's)."
  type        = string
  default     = "spinnaker"
}

variable "clouddriver_namespace" {
  description = "Clouddriver's namespace, where the Secret it mounts is made."
  type        = string
  default     = "spinnaker"
}

variable "image" {
  description = "The Outpost image."
  type        = string
}

variable "replicas" {
  description = "Gateway replicas."
  type        = number
  default     = 2
}

variable "database_url" {
  description = "The indexer's database for a read-only user (postgres://… or mysql://…)."
  type        = string
  sensitive   = true
}

variable "extra_tokens" {
  description = "More consumers of the gateway (e.g. people's kubectl): name, token (at least 32 characters), accounts."
  type = list(object({
    name     = string
    token    = string
    accounts = optional(list(string))
  }))
  default   = []
  sensitive = true
}

variable "certificate_validity_hours" {
  description = "How long the CA and the serving certificate are valid; Terraform renews the serving one in its last quarter."
  type        = number
  default     = 8760
}

variable "resources" {
  description = "The gateway container's requests and limits."
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  default = {
    requests = { cpu = "100m", memory = "64Mi" }
    limits   = { memory = "256Mi" }
  }
}

variable "kubernetes_minor_version" {
  description = "The cluster's Kubernetes minor version."
  type        = number
  default     = 30
}
