# The agent's IAM policy document (pure: no provider, no resource), so it can be rendered and
# checked offline. The agent only GETs and PUTs the five keys of its own cluster (docs/FORMAT.md
# §2.1); it never lists, never deletes, and every segment put is create-only.

locals {
  prefix      = join("/", compact(split("/", var.prefix)))
  cluster_dir = "${local.prefix == "" ? "" : "${local.prefix}/"}outpost/v1/clusters/${var.cluster}"
  bucket_arn  = "arn:${var.partition}:s3:::${var.bucket}"
  objects     = "${local.bucket_arn}/${local.cluster_dir}/*"
  segments    = "${local.bucket_arn}/${local.cluster_dir}/epochs/*"
  head        = "${local.bucket_arn}/${local.cluster_dir}/head.json"
  marker      = "${local.bucket_arn}/${local.cluster_dir}/decommissioned.json"

  statements = concat(
    [
      {
        Sid      = "ReadAndWriteOwnClusterOnly"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject"]
        Resource = [local.objects]
      },
      {
        # The lifecycle tag rides on each segment's put (x-amz-tagging needs this action);
        # nothing else of the agent's is tagged (docs/FORMAT.md §7.7).
        Sid      = "TagOwnSegmentsOnly"
        Effect   = "Allow"
        Action   = ["s3:PutObjectTagging"]
        Resource = [local.segments]
      },
      {
        # Segments and the decommission marker are create-only (§7.1): a put without
        # If-None-Match could overwrite one, so it is refused before S3 looks at the key.
        Sid       = "SegmentsAndMarkerAreCreateOnly"
        Effect    = "Deny"
        Action    = ["s3:PutObject"]
        Resource  = [local.segments, local.marker]
        Condition = { Null = { "s3:if-none-match" = "true" } }
      },
      {
        # head.json is created with If-None-Match and then moved only by compare-and-swap (§7.2).
        Sid      = "HeadIsCompareAndSwapOnly"
        Effect   = "Deny"
        Action   = ["s3:PutObject"]
        Resource = [local.head]
        Condition = { Null = {
          "s3:if-none-match" = "true"
          "s3:if-match"      = "true"
        } }
      },
      {
        Sid      = "NeverDeleteOrRewriteHistory"
        Effect   = "Deny"
        Action   = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObjectAcl", "s3:PutObjectVersionAcl", "s3:PutLifecycleConfiguration", "s3:PutBucketPolicy", "s3:BypassGovernanceRetention"]
        Resource = [local.bucket_arn, "${local.bucket_arn}/*"]
      },
    ],
    var.kms_key_arn == null ? [] : [
      {
        # SSE-KMS: a put needs a data key, a get needs to decrypt it; only through S3, and only
        # for objects of this bucket (the encryption context names the bucket).
        Sid      = "UseTheBucketKeyThroughS3Only"
        Effect   = "Allow"
        Action   = ["kms:GenerateDataKey", "kms:Decrypt"]
        Resource = [var.kms_key_arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${var.region}.amazonaws.com" }
          StringLike   = { "kms:EncryptionContext:aws:s3:arn" = [local.bucket_arn, "${local.bucket_arn}/*"] }
        }
      },
    ],
  )
}
