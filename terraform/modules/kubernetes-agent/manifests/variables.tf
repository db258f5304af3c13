variable "cluster" {
  description = "The cluster's name in Outpost (the agent's --cluster): a DNS-1123 label, unique in the bucket."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.cluster))
    error_message = "cluster must be a DNS-1123 label: 1-63 of a-z, 0-9 and '-', not starting or ending with '-'."
  }
}

variable "bucket_url" {
  description = "The bucket URL the agent writes to (aws-bucket's url output), e.g. s3://fleet/prod?region=eu-west-1."
  type        = string
  validation {
    condition     = can(regex("^(s3|s3a|gs|gcs|az|azure|abfs|file)://", var.bucket_url))
    error_message = "bucket_url must be an s3://, gs://, az:// or file:// URL (docs/FORMAT.md, Appendix A)."
  }
}

variable "name" {
  description = "The name of every object (ServiceAccount, ClusterRole, Deployment, …); change it only to run two agents in one cluster."
  type        = string
  default     = "outpost-agent"
}

variable "namespace" {
  description = "The agent's namespace."
  type        = string
  default     = "outpost"
}

variable "create_namespace" {
  description = "Create the namespace too."
  type        = bool
  default     = true
}

variable "kinds" {
  description = "What the agent watches and may read: name as the agent's config writes it (Kind, or Kind.group for custom resources), and the API group and resource the ClusterRole grants. Default: the agent's default kinds."
  type = list(object({
    name     = string
    group    = string
    resource = string
  }))
  default = [
    { name = "Deployment", group = "apps", resource = "deployments" },
    { name = "ReplicaSet", group = "apps", resource = "replicasets" },
    { name = "StatefulSet", group = "apps", resource = "statefulsets" },
    { name = "DaemonSet", group = "apps", resource = "daemonsets" },
    { name = "Job", group = "batch", resource = "jobs" },
    { name = "CronJob", group = "batch", resource = "cronjobs" },
    { name = "Pod", group = "", resource = "pods" },
    { name = "Service", group = "", resource = "services" },
    { name = "Ingress", group = "networking.k8s.io", resource = "ingresses" },
    { name = "NetworkPolicy", group = "networking.k8s.io", resource = "networkpolicies" },
    { name = "Namespace", group = "", resource = "namespaces" },
  ]
  validation {
    condition     = length(var.kinds) > 0 && alltrue([for k in var.kinds : can(regex("^[a-z][a-z0-9]*$", k.resource)) && can(regex("^[A-Z][A-Za-z0-9]*(\\.[a-z0-9.-]+)?$", k.name))])
    error_message = "each kind needs a name (Kind or Kind.group) and a lower-case plural resource; at least one kind."
  }
}

variable "redaction_key" {
  description = "The HMAC key for Secret values (at least 32 bytes), stored in a Secret the agent mounts; needed only when Secrets are watched."
  type        = string
  default     = ""
  sensitive   = true
  validation {
    condition     = var.redaction_key == "" || length(var.redaction_key) >= 32
    error_message = "redaction_key must be at least 32 bytes."
  }
}

variable "role_arn" {
  description = "The IAM role of the agent (aws-agent-identity's role_arn) for the IRSA annotation; null for EKS Pod Identity or another cloud."
  type        = string
  default     = null
}

variable "image" {
  description = "The Outpost image."
  type        = string
}

variable "replicas" {
  description = "Agent replicas; one writes, the others stand by to take over."
  type        = number
  default     = 2
}

variable "resources" {
  description = "The agent container's requests and limits. The defaults fit about 10,000 objects (BENCHMARKS.md: ~55 MB resident for 10k objects); raise the memory for larger clusters."
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  default = {
    requests = { cpu = "50m", memory = "128Mi" }
    limits   = { memory = "512Mi" }
  }
}

variable "extra_config" {
  description = "More agent settings, as the config file's camelCase keys (interval, namespaces, labelSelector, redaction.rules, …)."
  type        = any
  default     = {}
}

variable "kubernetes_minor_version" {
  description = "The cluster's Kubernetes minor version: PodDisruptionBudget and CronJob use their v1beta1 APIs before 1.21."
  type        = number
  default     = 30
}
