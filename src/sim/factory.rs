//! The [`ObjectFactory`]: its seeded RNG, simulated clock and etcd counter, the random primitives every kind's builders draw from, and the whole-cluster builder.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use crate::sim::ClusterShape;
use crate::sim::json::{creation_time, ts};
use crate::sim::managed::fields_of;
use crate::sim::strings::{base64, image_repo_of, ipv4};
use crate::sim::vocabulary::{
    CLUSTER_WORDS, DOMAINS, ENVIRONMENTS, ORGS, REGIONS, SAFE_ALPHABET, SYSTEM_NAMESPACES, TEAMS,
    TLDS,
};

/// 2026-11-01T00:00:00Z, where the simulated clock starts.
pub(in crate::sim) const CLOCK_START: i64 = 1_793_491_200;

pub(in crate::sim) const HOUR: i64 = 3_600;

pub(in crate::sim) const DAY: i64 = 86_400;

/// Mixed with the cluster seed so that `cluster` does not replay the factory's own stream.
pub(in crate::sim) const SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A worker node the simulated pods are scheduled on.
#[derive(Debug, Clone)]
pub(in crate::sim) struct Node {
    pub(in crate::sim) name: String,
    pub(in crate::sim) ip: String,
}

/// Deterministic generator of realistic Kubernetes objects; see the [module docs](super).
pub struct ObjectFactory {
    pub(in crate::sim) rng: StdRng,
    pub(in crate::sim) seed: u64,
    pub(in crate::sim) now: i64,
    pub(in crate::sim) cluster_created: i64,
    pub(in crate::sim) resource_version: u64,
    pub(in crate::sim) region: &'static str,
    pub(in crate::sim) account: String,
    pub(in crate::sim) cluster_name: String,
    pub(in crate::sim) domain: String,
    pub(in crate::sim) ca_pem: String,
    pub(in crate::sim) nodes: Vec<Node>,
    /// (kind, namespace, name) of every generated object, to keep names unique.
    pub(in crate::sim) names: BTreeSet<(String, String, String)>,
    /// IPv4 addresses handed out so far (pods, nodes, services).
    pub(in crate::sim) ips: BTreeSet<u32>,
    /// Digest of every image seen, so that all pods of an image report the same `imageID`.
    pub(in crate::sim) digests: BTreeMap<String, String>,
    /// Next StatefulSet ordinal per StatefulSet uid.
    pub(in crate::sim) ordinals: BTreeMap<String, u64>,
}

impl ObjectFactory {
    /// A factory whose objects depend only on `seed` and the sequence of calls.
    pub fn new(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let region = REGIONS[rng.random_range(0..REGIONS.len())];
        let mut factory = ObjectFactory {
            rng,
            seed,
            now: CLOCK_START,
            cluster_created: CLOCK_START,
            resource_version: 0,
            region,
            account: String::new(),
            cluster_name: String::new(),
            domain: String::new(),
            ca_pem: String::new(),
            nodes: Vec::new(),
            names: BTreeSet::new(),
            ips: BTreeSet::new(),
            digests: BTreeMap::new(),
            ordinals: BTreeMap::new(),
        };
        factory.cluster_created = CLOCK_START - factory.range(300, 900) as i64 * DAY;
        factory.resource_version = factory.range(50_000_000, 900_000_000);
        factory.account = factory.digits(12);
        factory.cluster_name = format!(
            "{}-{}-{}",
            factory.pick(ORGS),
            factory.pick(CLUSTER_WORDS),
            factory.range(1, 9)
        );
        factory.domain = format!("{}.{}", factory.pick(ORGS), factory.pick(TLDS));
        factory.ca_pem = factory.pem("CERTIFICATE", 1_060);
        factory
    }

    /// A whole cluster: all Namespaces first, then the system objects, then every application namespace's
    /// objects, owners always before their dependents.
    pub fn cluster(&mut self, shape: &ClusterShape) -> Vec<Value> {
        self.rng = StdRng::seed_from_u64(self.seed ^ shape.seed.wrapping_mul(SEED_MIX));
        self.nodes.clear();
        for _ in 0..shape.nodes.max(1) {
            let node = self.new_node();
            self.nodes.push(node);
        }
        let mut app_namespaces = Vec::new();
        let mut attempts = 0;
        while app_namespaces.len() < shape.namespaces {
            attempts += 1;
            let name = if attempts > 5_000 {
                format!("{}-{}", self.pick(TEAMS), attempts)
            } else if self.chance(0.5) {
                format!("{}-{}", self.pick(TEAMS), self.pick(ENVIRONMENTS))
            } else {
                format!("{}-{}", self.pick(DOMAINS), self.pick(TEAMS))
            };
            if !app_namespaces.contains(&name) {
                app_namespaces.push(name);
            }
        }
        let mut objects = Vec::new();
        for ns in SYSTEM_NAMESPACES {
            objects.push(self.namespace_at(ns, self.cluster_created));
        }
        let mut created = Vec::with_capacity(app_namespaces.len());
        for ns in &app_namespaces {
            let namespace = self.namespace(ns);
            created.push(creation_time(&namespace));
            objects.push(namespace);
        }
        objects.extend(self.system_objects());
        let avg = shape.apps_per_namespace.max(1);
        for (ns, created) in app_namespaces.iter().zip(created) {
            objects.extend(self.namespace_contents(ns, created));
            let apps = self.range((avg / 2).max(1) as u64, (avg * 3 / 2).max(1) as u64);
            for _ in 0..apps {
                objects.extend(self.app_created(ns, created));
            }
        }
        objects
    }

    /// Moves the simulated clock forward.
    pub fn advance_clock(&mut self, seconds: u64) {
        self.now += i64::try_from(seconds).unwrap_or(i64::MAX / 2);
    }

    /// The next resourceVersion of the cluster's etcd; strictly increasing.
    pub fn next_resource_version(&mut self) -> String {
        self.resource_version += self.range(1, 40);
        self.resource_version.to_string()
    }

    /// The simulated clock, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// `t` (Unix seconds) as the API server writes a `metav1.Time`.
    pub fn timestamp(t: i64) -> String {
        ts(t)
    }

    /// The `fieldsV1` set of a managed-fields entry owning exactly the fields of `owned` (a partial object).
    pub fn fields_v1(owned: &Value) -> Value {
        fields_of(owned)
    }

    pub(in crate::sim) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    pub(in crate::sim) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            lo
        } else {
            self.rng.random_range(lo..=hi)
        }
    }

    pub(in crate::sim) fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    pub(in crate::sim) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }

    pub(in crate::sim) fn chars(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n)
            .map(|_| char::from(alphabet[self.rng.random_range(0..alphabet.len())]))
            .collect()
    }

    pub(in crate::sim) fn hex(&mut self, n: usize) -> String {
        self.chars(b"0123456789abcdef", n)
    }

    pub(in crate::sim) fn digits(&mut self, n: usize) -> String {
        let first = char::from(b'1' + self.rng.random_range(0..9u8));
        let mut out = String::from(first);
        out.push_str(&self.chars(b"0123456789", n.saturating_sub(1)));
        out
    }

    pub(in crate::sim) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.rng.random::<u8>()).collect()
    }

    /// A random version-4 UUID.
    pub(in crate::sim) fn uid(&mut self) -> String {
        let mut b = self.bytes(16);
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex::encode(b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    pub(in crate::sim) fn suffix(&mut self) -> String {
        self.chars(SAFE_ALPHABET, 5)
    }

    pub(in crate::sim) fn template_hash(&mut self) -> String {
        let n = if self.chance(0.7) { 10 } else { 9 };
        self.chars(SAFE_ALPHABET, n)
    }

    /// A PEM block whose body is `der_len` random bytes behind a DER SEQUENCE header.
    pub(in crate::sim) fn pem(&mut self, label: &str, der_len: usize) -> String {
        let mut der = vec![0x30, 0x82, (der_len >> 8) as u8, der_len as u8];
        der.extend(self.bytes(der_len));
        let body = base64(&der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in body.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    /// A fresh, unused IPv4 address in `base/prefix`.
    pub(in crate::sim) fn ip_in(&mut self, base: u32, prefix: u32) -> u32 {
        let span = 1u32 << (32 - prefix);
        loop {
            let ip = base + self.rng.random_range(2..span - 1);
            if self.ips.insert(ip) {
                return ip;
            }
        }
    }

    pub(in crate::sim) fn pod_ip(&mut self) -> String {
        ipv4(self.ip_in(0x0A10_0000, 14)) // 10.16.0.0/14, the VPC's pod subnets
    }

    pub(in crate::sim) fn cluster_ip(&mut self) -> String {
        ipv4(self.ip_in(0xAC14_0000, 16)) // 172.20.0.0/16, the EKS service CIDR
    }

    pub(in crate::sim) fn new_node(&mut self) -> Node {
        let ip = self.ip_in(0x0A00_0000, 16);
        let [_, _, c, d] = ip.to_be_bytes();
        let name = format!("ip-10-0-{c}-{d}.{}.compute.internal", self.region);
        Node { name, ip: ipv4(ip) }
    }

    pub(in crate::sim) fn ensure_nodes(&mut self) {
        while self.nodes.len() < 3 {
            let node = self.new_node();
            self.nodes.push(node);
        }
    }

    /// Reserves `name` for `kind` in `ns`; false if it was taken.
    pub(in crate::sim) fn reserve(&mut self, kind: &str, ns: &str, name: &str) -> bool {
        self.names
            .insert((kind.to_string(), ns.to_string(), name.to_string()))
    }

    pub(in crate::sim) fn version(&mut self) -> String {
        let (major, minor, patch) = (self.range(0, 12), self.range(0, 40), self.range(0, 30));
        match self.range(0, 9) {
            0..=2 => format!("v{major}.{minor}.{patch}"),
            3..=4 => format!("{major}.{minor}.{patch}"),
            5 => self.hex(7),
            6 => format!(
                "2026.{:02}.{:02}-{}",
                self.range(1, 10),
                self.range(1, 28),
                self.hex(7)
            ),
            7 => format!("main-{}-{}", self.range(100, 9999), self.hex(8)),
            8 => format!("{major}.{minor}.{patch}-rc.{}", self.range(1, 6)),
            _ => format!("release-{}", self.range(100, 2500)),
        }
    }

    pub(in crate::sim) fn image_repo(&mut self, org: &str, name: &str) -> String {
        match self.range(0, 9) {
            0..=3 => format!(
                "{}.dkr.ecr.{}.amazonaws.com/{org}/{name}",
                self.account, self.region
            ),
            4..=5 => format!("ghcr.io/{org}/{name}"),
            6 => format!("gcr.io/{org}-{}/{name}", self.pick(ENVIRONMENTS)),
            7 => format!("quay.io/{org}/{name}"),
            _ => format!("docker.io/{org}/{name}"),
        }
    }

    /// `repo:tag`, sometimes pinned by digest.
    pub(in crate::sim) fn image(&mut self, repo: &str, tag: &str) -> String {
        match self.range(0, 9) {
            0..=1 => format!("{repo}:{tag}@sha256:{}", self.hex(64)),
            2 => format!("{repo}@sha256:{}", self.hex(64)),
            _ => format!("{repo}:{tag}"),
        }
    }

    /// The same image repository with another tag (and digest, if it was pinned).
    pub(in crate::sim) fn bump_image(&mut self, image: &str) -> String {
        let repo = image_repo_of(image);
        loop {
            let tag = self.version();
            let next = if image.contains('@') {
                format!("{repo}:{tag}@sha256:{}", self.hex(64))
            } else {
                format!("{repo}:{tag}")
            };
            if next != image {
                return next;
            }
        }
    }

    pub(in crate::sim) fn image_id(&mut self, image: &str) -> String {
        let repo = image_repo_of(image);
        if let Some((_, digest)) = image.split_once("@sha256:") {
            return format!("{repo}@sha256:{digest}");
        }
        let digest = match self.digests.get(image) {
            Some(d) => d.clone(),
            None => {
                let d = self.hex(64);
                self.digests.insert(image.to_string(), d.clone());
                d
            }
        };
        format!("{repo}@sha256:{digest}")
    }
}
