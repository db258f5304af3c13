# The indexer as an AWS Lambda function (the `bootstrap` of `just lambda-zip` on provided.al2023):
# woken by an EventBridge schedule and, optionally, by the bucket's notifications of written heads
# and decommission markers; it reads the bucket, and writes the database whose URL it reads from
# Secrets Manager, from inside the VPC that reaches the database.

data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  prefix     = join("/", compact(split("/", var.bucket_prefix)))
  root       = "${local.prefix == "" ? "" : "${local.prefix}/"}outpost/v1/clusters/"
  bucket_arn = "arn:${data.aws_partition.current.partition}:s3:::${var.bucket}"
  # The account template travels in a layer: Lambda mounts layers under /opt.
  template_path = "/opt/outpost/account-template.yaml"
}

resource "aws_iam_role" "indexer" {
  name                 = var.name
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "indexer" {
  name = "outpost-indexer"
  role = aws_iam_role.indexer.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          # Read only: the indexer lists clusters and reads heads, identities and segments.
          Sid      = "ReadTheBucket"
          Effect   = "Allow"
          Action   = ["s3:GetObject"]
          Resource = ["${local.bucket_arn}/${local.root}*"]
        },
        {
          Sid       = "ListClusters"
          Effect    = "Allow"
          Action    = ["s3:ListBucket"]
          Resource  = [local.bucket_arn]
          Condition = { StringLike = { "s3:prefix" = ["${local.root}*", local.root] } }
        },
        {
          Sid      = "ReadTheDatabaseUrl"
          Effect   = "Allow"
          Action   = ["secretsmanager:GetSecretValue"]
          Resource = [var.database_url_secret_arn]
        },
        {
          Sid      = "Logs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = ["${aws_cloudwatch_log_group.indexer.arn}:*"]
        },
      ],
      [for arn in compact([var.bucket_kms_key_arn]) : {
        Sid      = "DecryptSegments"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "s3.${data.aws_region.current.region}.amazonaws.com" }
        }
      }],
      [for arn in compact([var.secret_kms_key_arn]) : {
        Sid       = "DecryptTheSecret"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [arn]
        Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.current.region}.amazonaws.com" } }
      }],
    )
  })
}

# Network interfaces in the database's VPC (what AWSLambdaVPCAccessExecutionRole grants).
resource "aws_iam_role_policy_attachment" "vpc" {
  role       = aws_iam_role.indexer.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
}

resource "aws_cloudwatch_log_group" "indexer" {
  name              = "/aws/lambda/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

resource "aws_lambda_layer_version" "template" {
  count               = var.account_template == null ? 0 : 1
  layer_name          = "${var.name}-account-template"
  filename            = data.archive_file.template[0].output_path
  source_code_hash    = data.archive_file.template[0].output_base64sha256
  compatible_runtimes = ["provided.al2023"]
}

data "archive_file" "template" {
  count                   = var.account_template == null ? 0 : 1
  type                    = "zip"
  output_path             = "${path.root}/.terraform/${var.name}-account-template.zip"
  source_content          = var.account_template
  source_content_filename = "outpost/account-template.yaml"
}

resource "aws_lambda_function" "indexer" {
  #checkov:skip=CKV_AWS_116:No dead-letter queue: a failed notification run is repaired by the next scheduled run, which reads every head again (the indexer keeps its state in the database).
  #checkov:skip=CKV_AWS_272:Code signing is the operator's choice of signer profile; the zip is built from this repository.
  function_name                  = var.name
  role                           = aws_iam_role.indexer.arn
  runtime                        = "provided.al2023"
  handler                        = "bootstrap"
  architectures                  = ["x86_64"]
  filename                       = var.zip_path
  source_code_hash               = filebase64sha256(var.zip_path)
  memory_size                    = var.memory_mb
  timeout                        = var.timeout_seconds
  reserved_concurrent_executions = var.max_concurrent_runs
  layers                         = aws_lambda_layer_version.template[*].arn
  kms_key_arn                    = var.environment_kms_key_arn

  environment {
    variables = merge(
      {
        OUTPOST_BUCKET     = var.bucket_url
        OUTPOST_DB_SECRET  = var.database_url_secret_arn
        OUTPOST_LOG_FORMAT = "json"
        OUTPOST_LOG        = "info"
      },
      var.account_template == null ? {} : { OUTPOST_ACCOUNT_TEMPLATE = local.template_path },
      var.extra_environment,
    )
  }

  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = var.security_group_ids
  }

  tracing_config {
    mode = "Active"
  }

  depends_on = [aws_cloudwatch_log_group.indexer, aws_iam_role_policy.indexer]
  tags       = var.tags
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = "${var.name}-schedule"
  description         = "Index every Outpost cluster"
  schedule_expression = var.schedule
  tags                = var.tags
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule = aws_cloudwatch_event_rule.schedule.name
  arn  = aws_lambda_function.indexer.arn
}

resource "aws_lambda_permission" "schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.indexer.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule.arn
}

resource "aws_lambda_permission" "bucket" {
  count          = var.s3_notifications ? 1 : 0
  statement_id   = "AllowBucketNotifications"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.indexer.function_name
  principal      = "s3.amazonaws.com"
  source_arn     = local.bucket_arn
  source_account = var.bucket_account_id
}

# A head moves on every shipped segment and heartbeat; a marker evicts a cluster at once. The
# indexer reads the clusters the keys name (segments need no event: a head names them). A
# bucket has one notification configuration: this module owns it when s3_notifications is on.
resource "aws_s3_bucket_notification" "indexer" {
  count  = var.s3_notifications ? 1 : 0
  bucket = var.bucket
  lambda_function {
    id                  = "outpost-heads"
    lambda_function_arn = aws_lambda_function.indexer.arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = local.root
    filter_suffix       = "/head.json"
  }
  lambda_function {
    id                  = "outpost-decommissions"
    lambda_function_arn = aws_lambda_function.indexer.arn
    events              = ["s3:ObjectCreated:*"]
    filter_prefix       = local.root
    filter_suffix       = "/decommissioned.json"
  }
  depends_on = [aws_lambda_permission.bucket]
}
