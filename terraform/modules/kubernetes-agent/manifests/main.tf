# The agent's Kubernetes objects as data (pure: no provider, no resource): the one source of
# them, which the kubernetes-agent module applies and scripts/render-deploy turns into deploy/'s
# kustomize base and Helm chart. The agent
# only reads: its ClusterRole grants get, list and watch on exactly the kinds its config names.

locals {
  name   = var.name
  labels = { "app.kubernetes.io/name" = local.name, "app.kubernetes.io/part-of" = "outpost" }
  # Who the cluster is and where it ships are settings of their own (a ConfigMap read as
  # OUTPOST_CLUSTER and OUTPOST_BUCKET), so kustomize and Helm users set them without touching
  # the config file, whose kinds must match the ClusterRole.
  settings = { cluster = var.cluster, bucket = var.bucket_url }
  config = merge(
    {
      kinds  = [for k in var.kinds : k.name]
      listen = "0.0.0.0:9090"
    },
    var.extra_config,
    # The key file joins whatever redaction rules extra_config gives.
    [for _ in range(local.watches_secrets ? 1 : 0) : {
      redaction = merge(try(var.extra_config.redaction, {}), { keyFile = "/var/run/secrets/outpost/redaction/key" })
    }]...
  )
  watches_secrets = anytrue([for k in var.kinds : k.group == "" && k.resource == "secrets"])

  # One rule per API group, its resources sorted, so the role reads as docs/RBAC.md shows it.
  groups = sort(distinct([for k in var.kinds : k.group]))
  rules = [for g in local.groups : {
    apiGroups = [g]
    resources = sort(distinct([for k in var.kinds : k.resource if k.group == g]))
    verbs     = ["get", "list", "watch"]
  }]

  pod_spec = {
    serviceAccountName           = local.name
    automountServiceAccountToken = true
    securityContext = {
      runAsNonRoot   = true
      runAsUser      = 65532
      runAsGroup     = 65532
      fsGroup        = 65532
      seccompProfile = { type = "RuntimeDefault" }
    }
    containers = [{
      name            = "agent"
      image           = var.image
      imagePullPolicy = "IfNotPresent"
      args            = ["agent", "--config", "/etc/outpost/agent.yaml"]
      env = [
        { name = "POD_NAMESPACE", valueFrom = { fieldRef = { fieldPath = "metadata.namespace" } } },
        { name = "OUTPOST_CLUSTER", valueFrom = { configMapKeyRef = { name = "${local.name}-settings", key = "cluster" } } },
        { name = "OUTPOST_BUCKET", valueFrom = { configMapKeyRef = { name = "${local.name}-settings", key = "bucket" } } },
        { name = "OUTPOST_LOG_FORMAT", value = "json" },
        { name = "OUTPOST_LOG", value = "info" },
      ]
      ports     = [{ name = "http", containerPort = 9090, protocol = "TCP" }]
      resources = var.resources
      securityContext = {
        allowPrivilegeEscalation = false
        readOnlyRootFilesystem   = true
        capabilities             = { drop = ["ALL"] }
      }
      livenessProbe  = { httpGet = { path = "/healthz", port = "http" }, periodSeconds = 10, failureThreshold = 6 }
      readinessProbe = { httpGet = { path = "/readyz", port = "http" }, periodSeconds = 5 }
      # The first snapshot of a large cluster takes a while (BENCHMARKS.md: time to first snapshot).
      startupProbe = { httpGet = { path = "/healthz", port = "http" }, periodSeconds = 5, failureThreshold = 60 }
      volumeMounts = concat(
        [{ name = "config", mountPath = "/etc/outpost", readOnly = true }],
        [for _ in range(local.watches_secrets ? 1 : 0) : { name = "redaction", mountPath = "/var/run/secrets/outpost/redaction", readOnly = true }],
      )
    }]
    volumes = concat(
      [{ name = "config", configMap = { name = local.name } }],
      [for _ in range(local.watches_secrets ? 1 : 0) : { name = "redaction", secret = { secretName = "${local.name}-redaction-key" } }],
    )
  }

  meta = { namespace = var.namespace, labels = local.labels }

  # The checks of checkov (scripts/test-terraform runs it on deploy/) these workloads skip, and why.
  checkov_skips = {
    "checkov.io/skip1" = "CKV_K8S_14=the image and its tag are the installer's (kustomize images, Helm image.tag, the module's image)"
    "checkov.io/skip2" = "CKV_K8S_43=a digest is the installer's choice; the image reference is theirs"
    "checkov.io/skip3" = "CKV_K8S_15=IfNotPresent with a pinned tag; Always would make every restart depend on the registry"
    "checkov.io/skip4" = "CKV_K8S_11=no CPU limit on purpose: a throttled agent falls behind its watches; CPU is requested"
    "checkov.io/skip5" = "CKV_K8S_38=the agent watches the API server with its ServiceAccount's token"
    "checkov.io/skip6" = "CKV2_K8S_6=egress goes to the API server and the bucket, whose addresses differ per cluster; add a NetworkPolicy for yours"
  }

  decommission_job_spec = {
    backoffLimit            = 3
    ttlSecondsAfterFinished = 3600
    template = {
      metadata = { labels = merge(local.labels, { "app.kubernetes.io/component" = "decommission" }) }
      spec = merge(local.pod_spec, {
        restartPolicy = "OnFailure"
        containers = [merge(local.pod_spec.containers[0], {
          name           = "decommission"
          args           = ["agent", "--config", "/etc/outpost/agent.yaml", "--decommission"]
          ports          = []
          livenessProbe  = null
          readinessProbe = null
          startupProbe   = null
        })]
      })
    }
  }

  secret = [for _ in range(local.watches_secrets ? 1 : 0) : {
    apiVersion = "v1"
    kind       = "Secret"
    metadata   = merge(local.meta, { name = "${local.name}-redaction-key" })
    type       = "Opaque"
    data       = { key = base64encode(var.redaction_key) }
  }]

  objects = concat(
    [for _ in range(var.create_namespace ? 1 : 0) : {
      apiVersion = "v1"
      kind       = "Namespace"
      metadata   = { name = var.namespace, labels = local.labels }
    }],
    [
      {
        apiVersion = "v1"
        kind       = "ServiceAccount"
        metadata = merge(local.meta, {
          name        = local.name
          annotations = var.role_arn == null ? {} : { "eks.amazonaws.com/role-arn" = var.role_arn }
        })
      },
      {
        apiVersion = "rbac.authorization.k8s.io/v1"
        kind       = "ClusterRole"
        metadata   = { name = local.name, labels = local.labels }
        rules      = local.rules
      },
      {
        apiVersion = "rbac.authorization.k8s.io/v1"
        kind       = "ClusterRoleBinding"
        metadata   = { name = local.name, labels = local.labels }
        roleRef    = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole", name = local.name }
        subjects   = [{ kind = "ServiceAccount", name = local.name, namespace = var.namespace }]
      },
      {
        apiVersion = "v1"
        kind       = "ConfigMap"
        metadata   = merge(local.meta, { name = local.name })
        data       = { "agent.yaml" = yamlencode(local.config) }
      },
      {
        apiVersion = "v1"
        kind       = "ConfigMap"
        metadata   = merge(local.meta, { name = "${local.name}-settings" })
        data       = local.settings
      },
      {
        apiVersion = "apps/v1"
        kind       = "Deployment"
        metadata   = merge(local.meta, { name = local.name, annotations = local.checkov_skips })
        spec = {
          # Two replicas, one writer: the head's compare-and-swap elects it (docs/FORMAT.md §7.6);
          # the other takes over when the writer goes silent.
          replicas = var.replicas
          selector = { matchLabels = local.labels }
          strategy = { type = "RollingUpdate", rollingUpdate = { maxUnavailable = 1, maxSurge = 0 } }
          template = {
            metadata = {
              labels = local.labels
              # A changed config restarts the pods for the settings that are not reloaded.
              annotations = { "outpost.io/config-sha256" = sha256(yamlencode([local.config, local.settings])) }
            }
            spec = local.pod_spec
          }
        }
      },
      {
        apiVersion = var.kubernetes_minor_version < 21 ? "policy/v1beta1" : "policy/v1"
        kind       = "PodDisruptionBudget"
        metadata   = merge(local.meta, { name = local.name })
        spec       = { maxUnavailable = 1, selector = { matchLabels = local.labels } }
      },
      {
        # Never scheduled: `kubectl create job --from=cronjob/outpost-agent-decommission` runs it
        # once on uninstall (the kubernetes-agent module does on destroy), so the indexer evicts
        # the cluster at once instead of after its grace period.
        apiVersion = var.kubernetes_minor_version < 21 ? "batch/v1beta1" : "batch/v1"
        kind       = "CronJob"
        metadata   = merge(local.meta, { name = "${local.name}-decommission", annotations = local.checkov_skips })
        spec = {
          suspend                    = true
          schedule                   = "0 0 31 2 *"
          successfulJobsHistoryLimit = 1
          failedJobsHistoryLimit     = 1
          jobTemplate                = { spec = local.decommission_job_spec }
        }
      },
    ],
  )
}
