output "url" {
  description = "The gateway's URL; an account's kubeconfig server is <url>/clusters/<account>."
  value       = module.manifests.url
}

output "ca_pem" {
  description = "The CA of the gateway's serving certificate."
  value       = tls_self_signed_cert.ca.cert_pem
}

output "clouddriver_secret" {
  description = "The Secret to mount in Clouddriver (keys token and ca.crt), at clouddriver_mount_path."
  value       = module.manifests.client_secret
}

output "clouddriver_mount_path" {
  description = "Where Clouddriver should mount clouddriver_secret; the account template's gateway block names files under it."
  value       = local.client_mount
}

output "account_template_gateway" {
  description = "The `gateway` block of the indexer's account template."
  value = {
    url       = module.manifests.url
    caFile    = "${local.client_mount}/ca.crt"
    tokenFile = "${local.client_mount}/token"
  }
}
