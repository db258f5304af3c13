# The gateway's Kubernetes objects as data (pure: no provider, no resource): a Deployment of
# `outpost gateway` beside Clouddriver, its Service, its disruption budget, the Secret holding its
# database URL, serving certificate and consumer tokens, and the Secret Clouddriver mounts to
# reach it (its token and the CA).

locals {
  name   = var.name
  labels = { "app.kubernetes.io/name" = local.name, "app.kubernetes.io/part-of" = "outpost" }
  meta   = { namespace = var.namespace, labels = local.labels }
  mount  = "/etc/outpost-gateway"
  url    = "https://${local.name}.${var.namespace}.svc:8443"

  secrets = [
    {
      apiVersion = "v1"
      kind       = "Secret"
      metadata   = merge(local.meta, { name = local.name })
      type       = "Opaque"
      data = {
        "db-url"      = base64encode(var.database_url)
        "tls.crt"     = base64encode(var.tls_cert_pem)
        "tls.key"     = base64encode(var.tls_key_pem)
        "tokens.yaml" = base64encode(yamlencode(var.tokens))
      }
    },
    {
      # What Clouddriver mounts: the account template's gateway.tokenFile and gateway.caFile.
      apiVersion = "v1"
      kind       = "Secret"
      metadata   = { name = "${local.name}-client", namespace = var.client_namespace, labels = local.labels }
      type       = "Opaque"
      data = {
        token    = base64encode(var.client_token)
        "ca.crt" = base64encode(var.ca_pem)
      }
    },
  ]

  objects = [
    {
      apiVersion = "apps/v1"
      kind       = "Deployment"
      metadata   = merge(local.meta, { name = local.name })
      spec = {
        replicas = var.replicas
        selector = { matchLabels = local.labels }
        template = {
          metadata = {
            labels = local.labels
            # New certificates or tokens roll the pods (tokens are also re-read on change); a
            # hash of keys and tokens of this length reveals nothing.
            annotations = { "outpost.io/secret-sha256" = nonsensitive(sha256(jsonencode(local.secrets[0].data))) }
          }
          spec = {
            automountServiceAccountToken = false
            securityContext = {
              runAsNonRoot   = true
              runAsUser      = 65532
              runAsGroup     = 65532
              seccompProfile = { type = "RuntimeDefault" }
            }
            containers = [{
              name            = "gateway"
              image           = var.image
              imagePullPolicy = "IfNotPresent"
              args = ["gateway", "--listen", "0.0.0.0:8443",
                "--tls-cert", "${local.mount}/tls.crt", "--tls-key", "${local.mount}/tls.key",
              "--tokens", "${local.mount}/tokens.yaml"]
              env = [
                { name = "OUTPOST_DB", valueFrom = { secretKeyRef = { name = local.name, key = "db-url" } } },
                { name = "OUTPOST_LOG_FORMAT", value = "json" },
                { name = "OUTPOST_LOG", value = "info" },
              ]
              ports          = [{ name = "https", containerPort = 8443, protocol = "TCP" }]
              resources      = var.resources
              livenessProbe  = { httpGet = { path = "/healthz", port = "https", scheme = "HTTPS" }, periodSeconds = 10 }
              readinessProbe = { httpGet = { path = "/readyz", port = "https", scheme = "HTTPS" }, periodSeconds = 5 }
              securityContext = {
                allowPrivilegeEscalation = false
                readOnlyRootFilesystem   = true
                capabilities             = { drop = ["ALL"] }
              }
              volumeMounts = [{ name = "gateway", mountPath = local.mount, readOnly = true }]
            }]
            volumes = [{
              name = "gateway"
              secret = { secretName = local.name, items = [
                { key = "tls.crt", path = "tls.crt" },
                { key = "tls.key", path = "tls.key" },
                { key = "tokens.yaml", path = "tokens.yaml" },
              ] }
            }]
          }
        }
      }
    },
    {
      apiVersion = "v1"
      kind       = "Service"
      metadata   = merge(local.meta, { name = local.name })
      spec = {
        type     = "ClusterIP"
        selector = local.labels
        ports    = [{ name = "https", port = 8443, targetPort = "https", protocol = "TCP" }]
      }
    },
    {
      apiVersion = var.kubernetes_minor_version < 21 ? "policy/v1beta1" : "policy/v1"
      kind       = "PodDisruptionBudget"
      metadata   = merge(local.meta, { name = local.name })
      spec       = { maxUnavailable = 1, selector = { matchLabels = local.labels } }
    },
  ]
}
