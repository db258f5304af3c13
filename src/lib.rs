//! Outpost: ship Kubernetes cluster state to object storage and load it into Clouddriver's SQL cache.

pub mod agent;
pub mod cache;
pub mod cli;
pub mod format;
pub mod gateway;
pub mod indexer;
pub mod settings;
pub mod sim;
pub mod store;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;

/// An error and its causes on one line, each said once: many errors (object_store's among them)
/// repeat their source's text in their own message, so a cause already contained in the message
/// before it is skipped.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts
            .last()
            .is_some_and(|previous| previous.contains(&text))
        {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}
