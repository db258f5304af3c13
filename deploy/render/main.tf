# Renders the agent's objects of terraform/modules/kubernetes-agent/manifests for kubectl and
# kustomize users (deploy/kustomize/base) and Helm users (deploy/helm/outpost-agent), so those
# files are generated from the same source as the Terraform module, never written by hand.
# scripts/render-deploy runs this root and turns the sentinel values below into the placeholders
# and Helm expressions each target needs; `scripts/render-deploy --check` fails when the files
# are stale.

locals {
  # Values no real input has: scripts/render-deploy replaces each, quotes included.
  sentinel = {
    cluster   = "sentinel-cluster"
    bucket    = "s3://sentinel-bucket"
    namespace = "sentinel-namespace"
    image     = "sentinel-image"
    role_arn  = "sentinel-role-arn"
  }
}

module "kustomize" {
  source     = "../../terraform/modules/kubernetes-agent/manifests"
  cluster    = local.sentinel.cluster
  bucket_url = local.sentinel.bucket
  image      = "outpost"
}

module "helm" {
  source           = "../../terraform/modules/kubernetes-agent/manifests"
  cluster          = local.sentinel.cluster
  bucket_url       = local.sentinel.bucket
  namespace        = local.sentinel.namespace
  create_namespace = false
  image            = local.sentinel.image
  role_arn         = local.sentinel.role_arn
  replicas         = 7777
  resources = {
    requests = { cpu = "sentinel-requests-cpu", memory = "sentinel-requests-memory" }
    limits   = { memory = "sentinel-limits-memory" }
  }
}

output "kustomize" {
  description = "The base's objects (the Namespace included), as YAML."
  value       = join("---\n", [for o in module.kustomize.objects : yamlencode(o)])
}

output "helm" {
  description = "The chart's objects (Helm makes the namespace), as YAML."
  value       = join("---\n", [for o in module.helm.objects : yamlencode(o)])
}

output "helm_decommission" {
  description = "The chart's pre-delete hook: the decommission Job."
  value = yamlencode(merge(module.helm.decommission_job, {
    metadata = merge(module.helm.decommission_job.metadata, {
      annotations = {
        "helm.sh/hook"               = "pre-delete"
        "helm.sh/hook-delete-policy" = "before-hook-creation,hook-succeeded"
      }
    })
  }))
}

output "kinds" {
  description = "The kinds both targets watch and grant."
  value       = module.kustomize.cluster_role_rules
}
