# One IAM role per cluster for its Outpost agent, trusted by that cluster's agent ServiceAccount
# only (EKS IRSA, EKS Pod Identity, or both), allowed only the keys of its own cluster.

module "policy" {
  source      = "./policy"
  bucket      = var.bucket
  prefix      = var.prefix
  cluster     = var.cluster
  kms_key_arn = var.kms_key_arn
  region      = data.aws_region.current.region
  partition   = data.aws_partition.current.partition
}

data "aws_region" "current" {}
data "aws_partition" "current" {}
data "aws_caller_identity" "current" {}

locals {
  subject = "system:serviceaccount:${var.namespace}:${var.service_account}"
  # IRSA: the cluster's OIDC issuer without its scheme is the condition keys' prefix.
  issuer = var.oidc_provider_arn == null ? null : element(split(":oidc-provider/", var.oidc_provider_arn), 1)

  irsa = var.oidc_provider_arn == null ? [] : [{
    Sid       = "IrsaForTheAgentServiceAccountOnly"
    Effect    = "Allow"
    Principal = { Federated = var.oidc_provider_arn }
    Action    = "sts:AssumeRoleWithWebIdentity"
    Condition = {
      StringEquals = {
        "${local.issuer}:sub" = local.subject
        "${local.issuer}:aud" = "sts.amazonaws.com"
      }
    }
  }]

  pod_identity = var.eks_cluster_name == null ? [] : [{
    Sid       = "EksPodIdentityOfThisAccountOnly"
    Effect    = "Allow"
    Principal = { Service = "pods.eks.amazonaws.com" }
    Action    = ["sts:AssumeRole", "sts:TagSession"]
    Condition = {
      StringEquals = {
        "aws:SourceAccount"                         = data.aws_caller_identity.current.account_id
        "aws:RequestTag/kubernetes-namespace"       = var.namespace
        "aws:RequestTag/kubernetes-service-account" = var.service_account
      }
      ArnEquals = {
        "aws:SourceArn" = "arn:${data.aws_partition.current.partition}:eks:${data.aws_region.current.region}:${data.aws_caller_identity.current.account_id}:cluster/${var.eks_cluster_name}"
      }
    }
  }]
}

resource "aws_iam_role" "agent" {
  name                 = coalesce(var.role_name, "outpost-agent-${var.cluster}")
  description          = "Outpost agent of cluster ${var.cluster}: writes s3://${var.bucket}/${module.policy.cluster_prefix} only"
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = 3600
  assume_role_policy   = jsonencode({ Version = "2012-10-17", Statement = concat(local.irsa, local.pod_identity) })
  # The bucket policy (aws-bucket) confines a role to the cluster this tag names.
  tags = merge(var.tags, { "outpost-cluster" = var.cluster })

  lifecycle {
    precondition {
      condition     = var.oidc_provider_arn != null || var.eks_cluster_name != null
      error_message = "set oidc_provider_arn (IRSA), eks_cluster_name (EKS Pod Identity), or both: a role nothing may assume is of no use."
    }
  }
}

resource "aws_iam_role_policy" "agent" {
  name   = "outpost-agent-bucket"
  role   = aws_iam_role.agent.id
  policy = module.policy.json
}

resource "aws_eks_pod_identity_association" "agent" {
  count           = var.eks_cluster_name == null ? 0 : 1
  cluster_name    = var.eks_cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.agent.arn
  tags            = var.tags
}
