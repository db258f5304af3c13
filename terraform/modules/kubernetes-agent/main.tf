# The Outpost agent in a cluster: its namespace, ServiceAccount, read-only ClusterRole, config,
# redaction key, two-replica Deployment and disruption budget, applied from the object list of
# ./manifests; and on destroy, the decommission marker written before anything is removed.

resource "random_bytes" "redaction_key" {
  length = 32
}

module "manifests" {
  source                   = "./manifests"
  name                     = var.name
  cluster                  = var.cluster
  bucket_url               = var.bucket_url
  namespace                = var.namespace
  create_namespace         = var.create_namespace
  kinds                    = var.kinds
  redaction_key            = random_bytes.redaction_key.hex
  role_arn                 = var.role_arn
  image                    = var.image
  replicas                 = var.replicas
  resources                = var.resources
  extra_config             = var.extra_config
  kubernetes_minor_version = var.kubernetes_minor_version
}

locals {
  # The namespace first, cluster-scoped objects next, then what lives in the namespace.
  objects = { for o in module.manifests.objects : "${o.kind}/${o.metadata.name}" => o }
}

resource "kubernetes_manifest" "namespace" {
  for_each = { for k, o in local.objects : k => o if o.kind == "Namespace" }
  manifest = each.value
}

resource "kubernetes_manifest" "secret" {
  count      = length(module.manifests.secret)
  manifest   = module.manifests.secret[0]
  depends_on = [kubernetes_manifest.namespace]
}

resource "kubernetes_manifest" "agent" {
  for_each   = { for k, o in local.objects : k => o if o.kind != "Namespace" }
  manifest   = each.value
  depends_on = [kubernetes_manifest.namespace, kubernetes_manifest.secret]
}

# Destroyed first (it depends on everything above): a Job from the suspended decommission
# CronJob writes decommissioned.json while the ServiceAccount and config still exist.
resource "terraform_data" "decommission_on_destroy" {
  count = var.decommission_on_destroy ? 1 : 0
  input = {
    namespace  = var.namespace
    cronjob    = module.manifests.decommission_cronjob
    kubeconfig = var.kubeconfig_path
    context    = var.kubeconfig_context
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    environment = {
      NS         = self.input.namespace
      CRONJOB    = self.input.cronjob
      KUBECONFIG = self.input.kubeconfig
      CONTEXT    = self.input.context
    }
    command = <<-EOT
      set -eu
      ctx=""; [ -n "$CONTEXT" ] && ctx="--context=$CONTEXT"
      job="$CRONJOB-$(date +%s)"
      kubectl $ctx -n "$NS" create job "$job" --from="cronjob/$CRONJOB"
      kubectl $ctx -n "$NS" wait --for=condition=complete --timeout=300s "job/$job"
    EOT
  }

  depends_on = [kubernetes_manifest.agent]
}
