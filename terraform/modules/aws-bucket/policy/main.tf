# The bucket's policy (pure: no provider, no resource), so it can be rendered and checked offline:
# TLS only; nobody but the named administrators deletes an object (lifecycle rules still expire
# segments); segments and decommission markers are create-only and heads compare-and-swap, for
# every principal; and an agent role reaches only the prefix of the cluster its role is tagged
# with, whatever its own policy says.

locals {
  prefix     = join("/", compact(split("/", var.prefix)))
  root       = "${local.prefix == "" ? "" : "${local.prefix}/"}outpost/v1/clusters"
  bucket_arn = "arn:${var.partition}:s3:::${var.bucket}"
  clusters   = "${local.bucket_arn}/${local.root}"

  statements = [
    {
      Sid       = "TlsOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:*"
      Resource  = [local.bucket_arn, "${local.bucket_arn}/*"]
      Condition = { Bool = { "aws:SecureTransport" = "false" } }
    },
    merge(
      {
        Sid       = "NoDeletesButAdministrators"
        Effect    = "Deny"
        Principal = "*"
        Action    = ["s3:DeleteObject", "s3:DeleteObjectVersion"]
        Resource  = ["${local.bucket_arn}/*"]
      },
      length(var.admin_role_arns) == 0 ? {} : {
        Condition = { ArnNotLike = { "aws:PrincipalArn" = var.admin_role_arns } }
      },
    ),
    {
      Sid       = "SegmentsAndMarkersAreCreateOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:PutObject"
      Resource  = ["${local.clusters}/*/epochs/*", "${local.clusters}/*/decommissioned.json"]
      Condition = { Null = { "s3:if-none-match" = "true" } }
    },
    {
      Sid       = "HeadsAreCompareAndSwapOnly"
      Effect    = "Deny"
      Principal = "*"
      Action    = "s3:PutObject"
      Resource  = ["${local.clusters}/*/head.json"]
      Condition = { Null = { "s3:if-none-match" = "true", "s3:if-match" = "true" } }
    },
    {
      # The role's outpost-cluster tag names its cluster (aws-agent-identity sets it); a role
      # of the pattern without the tag matches no key and so reaches nothing.
      Sid         = "AgentsOnlyUnderTheirOwnCluster"
      Effect      = "Deny"
      Principal   = "*"
      NotAction   = ["s3:GetBucketLocation"]
      NotResource = ["${local.clusters}/$${aws:PrincipalTag/outpost-cluster}/*"]
      Condition   = { ArnLike = { "aws:PrincipalArn" = var.agent_role_pattern } }
    },
  ]
}
