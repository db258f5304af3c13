variable "name" {
  description = "The name of the gateway's objects (and of its Service: the URL's host)."
  type        = string
  default     = "outpost-gateway"
}

variable "namespace" {
  description = "The gateway's namespace (usually Spinnaker's)."
  type        = string
  default     = "spinnaker"
}

variable "client_namespace" {
  description = "Clouddriver's namespace, where the Secret it mounts (token and CA) is made."
  type        = string
  default     = "spinnaker"
}

variable "image" {
  description = "The Outpost image."
  type        = string
}

variable "replicas" {
  description = "Gateway replicas; each is stateless."
  type        = number
  default     = 2
}

variable "database_url" {
  description = "The indexer's database, read only: a user with SELECT on Outpost's tables is enough."
  type        = string
  sensitive   = true
}

variable "tls_cert_pem" {
  description = "The serving certificate chain (PEM); it must name the Service's DNS name."
  type        = string
}

variable "tls_key_pem" {
  description = "The serving certificate's key (PEM)."
  type        = string
  sensitive   = true
}

variable "ca_pem" {
  description = "The CA Clouddriver trusts the serving certificate with."
  type        = string
}

variable "tokens" {
  description = "The gateway's consumers: name, token (at least 32 characters) and optionally the accounts it may read."
  type = list(object({
    name     = string
    token    = string
    accounts = optional(list(string))
  }))
  sensitive = true
}

variable "client_token" {
  description = "Clouddriver's token (one of tokens)."
  type        = string
  sensitive   = true
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
  description = "The cluster's Kubernetes minor version: PodDisruptionBudget is policy/v1beta1 before 1.21."
  type        = number
  default     = 30
}
