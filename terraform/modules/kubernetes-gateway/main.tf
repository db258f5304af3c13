# Outpost's read-only Kubernetes API beside Clouddriver: a private CA and serving certificate for
# the gateway's Service, a token for Clouddriver (and any other consumers given), the objects of
# ./manifests applied, and what the indexer's account template needs to point accounts at it.

locals {
  dns_names = [
    var.name,
    "${var.name}.${var.namespace}",
    "${var.name}.${var.namespace}.svc",
    "${var.name}.${var.namespace}.svc.cluster.local",
  ]
  client_mount = "/var/run/secrets/outpost-gateway"
}

resource "tls_private_key" "ca" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_self_signed_cert" "ca" {
  private_key_pem       = tls_private_key.ca.private_key_pem
  is_ca_certificate     = true
  validity_period_hours = var.certificate_validity_hours
  allowed_uses          = ["cert_signing", "crl_signing"]
  subject {
    common_name  = "${var.name} CA"
    organization = "Outpost"
  }
}

resource "tls_private_key" "serving" {
  algorithm   = "ECDSA"
  ecdsa_curve = "P256"
}

resource "tls_cert_request" "serving" {
  private_key_pem = tls_private_key.serving.private_key_pem
  dns_names       = local.dns_names
  subject {
    common_name = local.dns_names[2]
  }
}

resource "tls_locally_signed_cert" "serving" {
  cert_request_pem      = tls_cert_request.serving.cert_request_pem
  ca_private_key_pem    = tls_private_key.ca.private_key_pem
  ca_cert_pem           = tls_self_signed_cert.ca.cert_pem
  validity_period_hours = var.certificate_validity_hours
  early_renewal_hours   = var.certificate_validity_hours / 4
  allowed_uses          = ["digital_signature", "key_encipherment", "server_auth"]
}

resource "random_password" "clouddriver" {
  length  = 48
  special = false
}

module "manifests" {
  source           = "./manifests"
  name             = var.name
  namespace        = var.namespace
  client_namespace = var.clouddriver_namespace
  image            = var.image
  replicas         = var.replicas
  database_url     = var.database_url
  tls_cert_pem     = tls_locally_signed_cert.serving.cert_pem
  tls_key_pem      = tls_private_key.serving.private_key_pem
  ca_pem           = tls_self_signed_cert.ca.cert_pem
  tokens = concat(
    [{ name = "clouddriver", token = random_password.clouddriver.result, accounts = null }],
    var.extra_tokens,
  )
  client_token             = random_password.clouddriver.result
  resources                = var.resources
  kubernetes_minor_version = var.kubernetes_minor_version
}

resource "kubernetes_manifest" "secret" {
  count    = 2
  manifest = module.manifests.secrets[count.index]
}

resource "kubernetes_manifest" "gateway" {
  for_each   = { for o in module.manifests.objects : "${o.kind}/${o.metadata.name}" => o }
  manifest   = each.value
  depends_on = [kubernetes_manifest.secret]
}
