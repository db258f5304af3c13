//! Errors of the Kubernetes API as they read in messages and logs: the API server's own message,
//! reason and code, where kube's `Display` would append a debug dump of its `Status`.

use std::fmt;

use kube::core::Status;
use kube::runtime::watcher;

/// A kube client error, displayed for people (see the module documentation).
#[derive(Debug)]
pub struct ApiError(pub kube::Error);

impl ApiError {
    /// [`ApiError`]'s text for a borrowed error.
    pub fn describe(error: &kube::Error) -> String {
        match error {
            kube::Error::Api(status) => describe_status(status),
            other => other.to_string(),
        }
    }

    /// The HTTP code the API server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match &self.0 {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        }
    }
}

impl From<kube::Error> for ApiError {
    fn from(error: kube::Error) -> Self {
        Self(error)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Self::describe(&self.0))
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            // The status is all said in the message.
            kube::Error::Api(_) => None,
            other => other.source(),
        }
    }
}

/// `secrets is forbidden: User "x" cannot create … (Forbidden, HTTP 403)`.
pub fn describe_status(status: &Status) -> String {
    let mut detail = Vec::new();
    if !status.reason.is_empty() {
        detail.push(status.reason.clone());
    }
    if status.code != 0 {
        detail.push(format!("HTTP {}", status.code));
    }
    match (status.message.is_empty(), detail.is_empty()) {
        (true, true) => "the API server refused the request without saying why".to_string(),
        (true, false) => detail.join(", "),
        (false, true) => status.message.clone(),
        (false, false) => format!("{} ({})", status.message, detail.join(", ")),
    }
}

/// A watch's error, displayed like [`ApiError`].
pub fn describe_watch_error(error: &watcher::Error) -> String {
    match error {
        watcher::Error::InitialListFailed(e) => {
            format!("listing failed: {}", ApiError::describe(e))
        }
        watcher::Error::WatchStartFailed(e) => {
            format!("starting the watch failed: {}", ApiError::describe(e))
        }
        watcher::Error::WatchFailed(e) => format!("the watch failed: {}", ApiError::describe(e)),
        watcher::Error::WatchError(status) => {
            format!("the watch failed: {}", describe_status(status))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden() -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure(
                "secrets is forbidden: User \"outpost-agent\" cannot create resource \"secrets\" in API group \"\" in the namespace \"ops\"",
                "Forbidden",
            )
            .with_code(403),
        ))
    }

    #[test]
    fn an_api_error_reads_as_the_servers_message_reason_and_code() {
        let text = ApiError(forbidden()).to_string();
        assert_eq!(
            text,
            "secrets is forbidden: User \"outpost-agent\" cannot create resource \"secrets\" in API group \"\" in the namespace \"ops\" (Forbidden, HTTP 403)"
        );
        assert!(!kube::Error::Api(Box::default()).to_string().is_empty());
        assert_eq!(
            ApiError(kube::Error::Api(Box::default())).to_string(),
            "the API server refused the request without saying why"
        );
        assert_eq!(ApiError(forbidden()).code(), Some(403));
        let chain = crate::error_chain(&ApiError(forbidden()));
        assert!(!chain.contains("Status {"), "{chain}");
    }

    #[test]
    fn a_watch_error_has_no_debug_dump() {
        let text = describe_watch_error(&watcher::Error::InitialListFailed(forbidden()));
        assert!(
            text.starts_with("listing failed: secrets is forbidden"),
            "{text}"
        );
        assert!(!text.contains("Status {"), "{text}");
    }
}
