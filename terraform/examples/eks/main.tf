# One EKS cluster reported to an existing Spinnaker through Outpost: the bucket, the cluster's
# agent with its IAM role (IRSA), the indexer as a Lambda function writing Clouddriver's database,
# and the gateway beside Clouddriver, in Spinnaker's own cluster.

provider "aws" {
  region = var.region
}

data "aws_caller_identity" "current" {}

# The workload cluster, which Spinnaker cannot reach.
data "aws_eks_cluster" "workload" {
  name = var.workload_cluster
}

data "aws_eks_cluster_auth" "workload" {
  name = var.workload_cluster
}

data "aws_iam_openid_connect_provider" "workload" {
  url = data.aws_eks_cluster.workload.identity[0].oidc[0].issuer
}

provider "kubernetes" {
  alias                  = "workload"
  host                   = data.aws_eks_cluster.workload.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.workload.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.workload.token
}

# Spinnaker's cluster, where Clouddriver and the gateway run.
data "aws_eks_cluster" "spinnaker" {
  name = var.spinnaker_cluster
}

data "aws_eks_cluster_auth" "spinnaker" {
  name = var.spinnaker_cluster
}

provider "kubernetes" {
  alias                  = "spinnaker"
  host                   = data.aws_eks_cluster.spinnaker.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.spinnaker.certificate_authority[0].data)
  token                  = data.aws_eks_cluster_auth.spinnaker.token
}

module "bucket" {
  source = "../../modules/aws-bucket"
  name   = var.bucket
  prefix = var.prefix
  tags   = var.tags
}

module "agent_identity" {
  source            = "../../modules/aws-agent-identity"
  cluster           = var.outpost_cluster_name
  bucket            = module.bucket.bucket
  prefix            = var.prefix
  kms_key_arn       = module.bucket.kms_key_arn
  oidc_provider_arn = data.aws_iam_openid_connect_provider.workload.arn
  tags              = var.tags
}

module "agent" {
  source     = "../../modules/kubernetes-agent"
  providers  = { kubernetes = kubernetes.workload }
  cluster    = var.outpost_cluster_name
  bucket_url = module.bucket.url
  role_arn   = module.agent_identity.role_arn
  image      = var.image
  # Destroying the example writes the decommission marker through this context.
  kubeconfig_context = var.workload_kubeconfig_context
}

module "gateway" {
  source                = "../../modules/kubernetes-gateway"
  providers             = { kubernetes = kubernetes.spinnaker }
  namespace             = var.spinnaker_namespace
  clouddriver_namespace = var.spinnaker_namespace
  image                 = var.image
  database_url          = var.gateway_database_url
}

module "indexer" {
  source                  = "../../modules/aws-indexer"
  zip_path                = var.lambda_zip
  bucket                  = module.bucket.bucket
  bucket_prefix           = var.prefix
  bucket_url              = module.bucket.url
  bucket_kms_key_arn      = module.bucket.kms_key_arn
  bucket_account_id       = data.aws_caller_identity.current.account_id
  database_url_secret_arn = var.database_url_secret_arn
  subnet_ids              = var.indexer_subnet_ids
  security_group_ids      = var.indexer_security_group_ids
  account_template = yamlencode({
    prefix      = "outpost-"
    environment = var.spinnaker_environment
    permissions = var.account_permissions
    gateway     = module.gateway.account_template_gateway
  })
  tags = var.tags
}
