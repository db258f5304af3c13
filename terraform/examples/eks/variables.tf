variable "region" {
  description = "The AWS region of the clusters, the bucket and the indexer."
  type        = string
}

variable "workload_cluster" {
  description = "The EKS cluster to report (its EKS name)."
  type        = string
}

variable "workload_kubeconfig_context" {
  description = "A kubeconfig context of the workload cluster, for the decommission Job run on destroy."
  type        = string
  default     = ""
}

variable "outpost_cluster_name" {
  description = "The cluster's name in Outpost: a DNS-1123 label, unique in the bucket; its Spinnaker account is outpost-<name>."
  type        = string
}

variable "spinnaker_cluster" {
  description = "The EKS cluster Clouddriver runs in."
  type        = string
}

variable "spinnaker_namespace" {
  description = "Clouddriver's namespace."
  type        = string
  default     = "spinnaker"
}

variable "spinnaker_environment" {
  description = "The environment of the registered accounts in Spinnaker."
  type        = string
  default     = "prod"
}

variable "account_permissions" {
  description = "Fiat roles of the registered accounts (READ, WRITE, EXECUTE); empty for none."
  type        = map(list(string))
  default     = {}
}

variable "bucket" {
  description = "The bucket's name (globally unique)."
  type        = string
}

variable "prefix" {
  description = "A prefix inside the bucket, empty for none."
  type        = string
  default     = "fleet"
}

variable "image" {
  description = "The Outpost image (built from this repository's Dockerfile)."
  type        = string
}

variable "lambda_zip" {
  description = "The zip `just lambda-zip` built."
  type        = string
}

variable "database_url_secret_arn" {
  description = "The Secrets Manager secret holding Clouddriver's database URL for the indexer (a user that writes the cats tables and Outpost's)."
  type        = string
}

variable "gateway_database_url" {
  description = "The same database for a read-only user, for the gateway."
  type        = string
  sensitive   = true
}

variable "indexer_subnet_ids" {
  description = "Subnets from which the indexer reaches the database and S3."
  type        = list(string)
}

variable "indexer_security_group_ids" {
  description = "Security groups the database admits."
  type        = list(string)
}

variable "tags" {
  description = "Tags of every AWS resource."
  type        = map(string)
  default     = { "app" = "outpost" }
}
