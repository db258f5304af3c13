//! Outpost: ship Kubernetes cluster state to object storage and load it into Clouddriver's SQL cache.

pub mod agent;
pub mod cli;
pub mod format;
pub mod sim;
pub mod store;
