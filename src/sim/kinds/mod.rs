//! The simulator by kind: each module owns how its kind of object is built (as [`ObjectFactory`] methods)
//! and how it changes under churn (as [`Churn`] methods: the change itself and its controller's reconciliation).
//!
//! [`ObjectFactory`]: crate::sim::ObjectFactory
//! [`Churn`]: crate::sim::Churn

pub(super) mod apps;
pub(super) mod config;
pub(super) mod deployments;
pub(super) mod jobs;
pub(super) mod namespaces;
pub(super) mod networking;
pub(super) mod pod_templates;
pub(super) mod pods;
pub(super) mod replica_sets;
pub(super) mod stateful_sets;
pub(super) mod system;
#[cfg(test)]
mod tests;
