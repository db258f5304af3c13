//! Outpost: ship Kubernetes cluster state to object storage and load it into Clouddriver's SQL cache.

pub mod format;
