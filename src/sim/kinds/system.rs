//! The `kube-system` namespace: the control plane's add-on Deployments and DaemonSets, their Services and ConfigMaps, and node Leases.

use serde_json::{Map, Value, json};

use crate::sim::DAEMON_SETS;
use crate::sim::churn::Churn;
use crate::sim::churn::store::Key;
use crate::sim::factory::{DAY, HOUR, Node, ObjectFactory};
use crate::sim::json::{Fields, labels_of, set, set_or_remove, terminating, ts};
use crate::sim::kinds::apps::{App, Runtime};
use crate::sim::managed::{Flavor, KCM, fields_of, managed_entry, set_status_managed};
use crate::sim::strings::base64;

/// A fixed system component (kube-system Deployments and DaemonSets).
pub(in crate::sim) struct Component {
    pub(in crate::sim) name: &'static str,
    pub(in crate::sim) image: &'static str,
    pub(in crate::sim) command: &'static [&'static str],
    pub(in crate::sim) args: &'static [&'static str],
    pub(in crate::sim) ports: &'static [(&'static str, u64, &'static str)],
    pub(in crate::sim) probe: Option<(&'static str, u64)>,
    pub(in crate::sim) replicas: u64,
    pub(in crate::sim) host_network: bool,
}

pub(in crate::sim) static SYSTEM_DEPLOYMENTS: [Component; 5] = [
    Component {
        name: "coredns",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/coredns:v1.11.3-eksbuild.2",
        command: &[],
        args: &["-conf", "/etc/coredns/Corefile"],
        ports: &[
            ("dns", 53, "UDP"),
            ("dns-tcp", 53, "TCP"),
            ("metrics", 9153, "TCP"),
        ],
        probe: Some(("/health", 8080)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "metrics-server",
        image: "registry.k8s.io/metrics-server/metrics-server:v0.7.2",
        command: &[],
        args: &[
            "--cert-dir=/tmp",
            "--secure-port=10251",
            "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
        ],
        ports: &[("https", 10251, "TCP")],
        probe: Some(("/livez", 10251)),
        replicas: 1,
        host_network: false,
    },
    Component {
        name: "ebs-csi-controller",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/aws-ebs-csi-driver:v1.36.0",
        command: &[],
        args: &[
            "controller",
            "--endpoint=$(CSI_ENDPOINT)",
            "--batching=true",
            "--logging-format=text",
            "--user-agent-extra=eks",
            "-v=2",
        ],
        ports: &[("healthz", 9808, "TCP")],
        probe: Some(("/healthz", 9808)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "aws-load-balancer-controller",
        image: "public.ecr.aws/eks/aws-load-balancer-controller:v2.9.2",
        command: &[],
        args: &[
            "--cluster-name={cluster}",
            "--ingress-class=alb",
            "--aws-region={region}",
            "--enable-shield=false",
        ],
        ports: &[
            ("webhook-server", 9443, "TCP"),
            ("metrics-server", 8080, "TCP"),
        ],
        probe: Some(("/healthz", 61779)),
        replicas: 2,
        host_network: false,
    },
    Component {
        name: "cluster-autoscaler",
        image: "registry.k8s.io/autoscaling/cluster-autoscaler:v1.31.0",
        command: &[
            "./cluster-autoscaler",
            "--v=4",
            "--stderrthreshold=info",
            "--cloud-provider=aws",
            "--skip-nodes-with-local-storage=false",
            "--expander=least-waste",
            "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,k8s.io/cluster-autoscaler/{cluster}",
            "--balance-similar-node-groups",
            "--skip-nodes-with-system-pods=false",
        ],
        args: &[],
        ports: &[("http", 8085, "TCP")],
        probe: Some(("/health-check", 8085)),
        replicas: 1,
        host_network: false,
    },
];

pub(in crate::sim) static SYSTEM_DAEMON_SETS: [Component; DAEMON_SETS] = [
    Component {
        name: "aws-node",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/amazon-k8s-cni:v1.18.5-eksbuild.1",
        command: &[],
        args: &[],
        ports: &[("metrics", 61678, "TCP")],
        probe: None,
        replicas: 0,
        host_network: true,
    },
    Component {
        name: "kube-proxy",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/kube-proxy:v1.31.2-minimal-eksbuild.3",
        command: &[
            "kube-proxy",
            "--v=2",
            "--config=/var/lib/kube-proxy-config/config",
            "--hostname-override=$(NODE_NAME)",
        ],
        args: &[],
        ports: &[],
        probe: None,
        replicas: 0,
        host_network: true,
    },
    Component {
        name: "ebs-csi-node",
        image: "602401143452.dkr.ecr.{region}.amazonaws.com/eks/aws-ebs-csi-driver:v1.36.0",
        command: &[],
        args: &[
            "node",
            "--endpoint=$(CSI_ENDPOINT)",
            "--csi-mount-point-prefix=/var/lib/kubelet/plugins/kubernetes.io/csi/ebs.csi.aws.com/",
            "--logging-format=text",
            "-v=2",
        ],
        ports: &[("healthz", 9808, "TCP")],
        probe: Some(("/healthz", 9808)),
        replicas: 0,
        host_network: false,
    },
    Component {
        name: "fluent-bit",
        image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4",
        command: &[],
        args: &[],
        ports: &[("http", 2020, "TCP")],
        probe: Some(("/api/v1/health", 2020)),
        replicas: 0,
        host_network: false,
    },
];

pub(in crate::sim) const KUBE_PROXY_CONFIG: &str = "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: 0.0.0.0\nclientConnection:\n  acceptContentTypes: \"\"\n  burst: 10\n  contentType: application/vnd.kubernetes.protobuf\n  kubeconfig: /var/lib/kube-proxy/kubeconfig\n  qps: 5\nclusterCIDR: \"\"\nconfigSyncPeriod: 15m0s\nconntrack:\n  maxPerCore: 32768\n  min: 131072\n  tcpCloseWaitTimeout: 1h0m0s\n  tcpEstablishedTimeout: 24h0m0s\nenableProfiling: false\nhealthzBindAddress: 0.0.0.0:10256\nhostnameOverride: \"\"\niptables:\n  masqueradeAll: false\n  masqueradeBit: 14\n  minSyncPeriod: 0s\n  syncPeriod: 30s\nmetricsBindAddress: 0.0.0.0:10249\nmode: \"iptables\"\noomScoreAdj: -998\nportRange: \"\"\n";

pub(in crate::sim) const COREFILE: &str = ".:53 {\n    errors\n    health {\n        lameduck 5s\n      }\n    ready\n    kubernetes cluster.local in-addr.arpa ip6.arpa {\n      pods insecure\n      fallthrough in-addr.arpa ip6.arpa\n    }\n    prometheus :9153\n    forward . /etc/resolv.conf\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";

impl ObjectFactory {
    pub(in crate::sim) fn system_app(&mut self, ns: &str, component: &'static Component) -> App {
        let name = component.name.to_string();
        self.reserve("App", ns, &name);
        let labels = labels_of(&[
            ("k8s-app", component.name),
            ("eks.amazonaws.com/component", component.name),
        ]);
        let selector = labels_of(&[("k8s-app", component.name)]);
        App {
            ns: ns.to_string(),
            name,
            flavor: Flavor::System,
            runtime: Runtime::Go,
            created: self.cluster_created + self.range(60, 3_600) as i64,
            labels,
            selector,
            template_labels: Map::new(),
            image_repo: String::new(),
            version: String::new(),
            port: component.ports.first().map(|p| p.1).unwrap_or(8080),
            config_map: None,
            secret: None,
            service_account: Some(component.name.to_string()),
            component: Some(component),
            lean: true,
        }
    }

    /// Objects of the system namespaces: the `kubernetes` Service, add-on Deployments and DaemonSets in
    /// kube-system, cluster-info, and one node Lease per node.
    pub(in crate::sim) fn system_objects(&mut self) -> Vec<Value> {
        let created = self.cluster_created;
        let mut out = Vec::new();
        // default
        out.extend(self.namespace_basics("default", created));
        self.reserve("Service", "default", "kubernetes");
        let labels = labels_of(&[("component", "apiserver"), ("provider", "kubernetes")]);
        let meta = self.metadata(Some("default"), "kubernetes", created, labels, Map::new());
        self.ips.insert(0xAC14_0001);
        let mut kubernetes = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "clusterIP": "172.20.0.1",
                "clusterIPs": ["172.20.0.1"],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443}],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        });
        let fields = json!({"metadata": {"labels": kubernetes["metadata"]["labels"].clone()}, "spec": kubernetes["spec"].clone()});
        Self::push_managed(
            &mut kubernetes,
            managed_entry(
                "kube-apiserver",
                "Update",
                "v1",
                created,
                fields_of(&fields),
                None,
            ),
        );
        out.push(kubernetes);
        out.push(self.docker_config_secret("default", "regcred", created + DAY));
        // kube-system
        let ks = "kube-system";
        out.extend(self.namespace_basics(ks, created));
        for component in &SYSTEM_DEPLOYMENTS {
            let app = self.system_app(ks, component);
            let sa = self.system_service_account(ks, component.name, app.created);
            out.push(sa.clone());
            out.extend(self.deployment_bundle(&app, component.replicas));
            match component.name {
                "coredns" => {
                    out.push(self.system_service(
                        &app,
                        "kube-dns",
                        Some(0xAC14_000A),
                        &[
                            ("dns", 53, "UDP"),
                            ("dns-tcp", 53, "TCP"),
                            ("metrics", 9153, "TCP"),
                        ],
                    ));
                    out.push(self.system_config_map(
                        ks,
                        "coredns",
                        app.created,
                        "Corefile",
                        COREFILE,
                    ));
                }
                "metrics-server" => out.push(self.system_service(
                    &app,
                    "metrics-server",
                    None,
                    &[("https", 443, "TCP")],
                )),
                "aws-load-balancer-controller" => {
                    out.push(self.system_service(
                        &app,
                        "aws-load-balancer-webhook-service",
                        None,
                        &[("webhook-server", 443, "TCP")],
                    ));
                    out.push(self.tls_secret(
                        ks,
                        "aws-load-balancer-tls",
                        app.created,
                        Flavor::System,
                    ));
                }
                "cluster-autoscaler" => out.push(self.token_secret(ks, &sa, app.created)),
                _ => {}
            }
        }
        for component in &SYSTEM_DAEMON_SETS {
            let app = self.system_app(ks, component);
            out.push(self.system_service_account(ks, component.name, app.created));
            let ds = self.daemon_set(&app);
            out.push(ds.clone());
            for node in 0..self.nodes.len() {
                let created = self.between(app.created.max(self.now - 120 * DAY), self.now - HOUR);
                out.push(self.pod_at(&ds, node, created));
            }
        }
        out.push(self.system_config_map(
            ks,
            "kube-proxy-config",
            created,
            "config",
            KUBE_PROXY_CONFIG,
        ));
        let kubeconfig = format!(
            "kind: Config\napiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: https://{}.gr7.{}.eks.amazonaws.com\n  name: default\ncontexts:\n- context:\n    cluster: default\n    namespace: default\n    user: default\n  name: default\ncurrent-context: default\nusers:\n- name: default\n  user:\n    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n",
            self.hex(32).to_uppercase(),
            self.region
        );
        out.push(self.system_config_map(ks, "kube-proxy", created, "kubeconfig", &kubeconfig));
        let fluent = "[SERVICE]\n    Flush 5\n    Log_Level info\n    Parsers_File parsers.conf\n[INPUT]\n    Name tail\n    Path /var/log/containers/*.log\n    Tag kube.*\n    multiline.parser docker, cri\n    Mem_Buf_Limit 50MB\n[FILTER]\n    Name kubernetes\n    Match kube.*\n    Merge_Log On\n[OUTPUT]\n    Name cloudwatch_logs\n    Match *\n    log_group_name /aws/eks/{cluster}/containers\n    auto_create_group true\n".replace("{cluster}", &self.cluster_name);
        out.push(self.system_config_map(
            ks,
            "fluent-bit-config",
            created,
            "fluent-bit.conf",
            &fluent,
        ));
        let node_group = self.hex(8);
        let aws_auth = format!(
            "- groups:\n  - system:bootstrappers\n  - system:nodes\n  rolearn: arn:aws:iam::{0}:role/{1}-node-group-{2}\n  username: system:node:{{{{EC2PrivateDNSName}}}}\n- groups:\n  - system:masters\n  rolearn: arn:aws:iam::{0}:role/spinnaker-managed-{1}\n  username: spinnaker\n",
            self.account, self.cluster_name, node_group
        );
        out.push(self.system_config_map(ks, "aws-auth", created, "mapRoles", &aws_auth));
        let client_ca = self.ca_pem.clone();
        out.push(self.system_config_map(
            ks,
            "extension-apiserver-authentication",
            created,
            "client-ca-file",
            &client_ca,
        ));
        // kube-public
        out.extend(self.namespace_basics("kube-public", created));
        let cluster_info = format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://{}.gr7.{}.eks.amazonaws.com\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
            base64(self.ca_pem.as_bytes()),
            self.hex(32).to_uppercase(),
            self.region
        );
        out.push(self.system_config_map(
            "kube-public",
            "cluster-info",
            created,
            "kubeconfig",
            &cluster_info,
        ));
        // kube-node-lease
        out.extend(self.namespace_basics("kube-node-lease", created));
        for node in self.nodes.clone() {
            out.push(self.lease(&node));
        }
        out
    }

    pub(in crate::sim) fn daemon_set(&mut self, app: &App) -> Value {
        self.reserve("DaemonSet", &app.ns, &app.name);
        let template = self.pod_template(app);
        let mut template = template;
        template["spec"]["priorityClassName"] = json!("system-node-critical");
        template["spec"]["tolerations"] = json!([{"operator": "Exists"}]);
        let n = self.nodes.len();
        let generation = self.range(1, 6);
        let annotations = labels_of(&[(
            "deprecated.daemonset.template.generation",
            generation.to_string().as_str(),
        )]);
        let mut meta = self.metadata(
            Some(&app.ns),
            &app.name,
            app.created,
            app.labels.clone(),
            annotations,
        );
        meta.insert("generation".into(), json!(generation));
        let mut ds = json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": meta,
            "spec": {
                "revisionHistoryLimit": 10,
                "selector": {"matchLabels": Value::Object(app.selector.clone())},
                "template": template,
                "updateStrategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}, "type": "RollingUpdate"},
            },
            "status": {
                "currentNumberScheduled": n,
                "desiredNumberScheduled": n,
                "numberAvailable": n,
                "numberMisscheduled": 0,
                "numberReady": n,
                "observedGeneration": generation,
                "updatedNumberScheduled": n,
            },
        });
        self.applied(&mut ds, Flavor::System, app.created);
        Self::status_managed(
            &mut ds,
            "kube-controller-manager",
            self.now - self.range(60, 3_600) as i64,
        );
        ds
    }

    pub(in crate::sim) fn lease(&mut self, node: &Node) -> Value {
        let ns = "kube-node-lease";
        self.reserve("Lease", ns, &node.name);
        let created = self.between(self.cluster_created, self.now - DAY);
        let meta = self.metadata(Some(ns), &node.name, created, Map::new(), Map::new());
        let renew = format!(
            "{}.{:06}Z",
            ts(self.now - self.range(0, 9) as i64).trim_end_matches('Z'),
            self.range(0, 999_999)
        );
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": {"holderIdentity": node.name, "leaseDurationSeconds": 40, "renewTime": renew},
        });
        let fields = json!({"spec": lease["spec"].clone()});
        Self::push_managed(
            &mut lease,
            managed_entry(
                "kubelet",
                "Update",
                "coordination.k8s.io/v1",
                self.now - 5,
                fields_of(&fields),
                None,
            ),
        );
        lease
    }
}

impl Churn {
    pub(in crate::sim) fn reconcile_daemon_set(&mut self, key: &Key) {
        let Some(ds) = self.get(key) else { return };
        if terminating(ds) {
            return;
        }
        let (_, ready, _) = self.pod_counts(ds.str_at("/metadata/uid"));
        let desired = ds.count_at("/status/desiredNumberScheduled");
        let mut status = ds.get("status").cloned().unwrap_or_else(|| json!({}));
        set_or_remove(&mut status, "numberAvailable", ready);
        set_or_remove(&mut status, "numberReady", ready);
        set_or_remove(
            &mut status,
            "numberUnavailable",
            desired.saturating_sub(ready),
        );
        if ds.get("status") != Some(&status) {
            let now = self.ts();
            self.modify(key, |o| {
                set(o, "", "status", status);
                set_status_managed(o, KCM, &now);
            });
        }
    }
}
