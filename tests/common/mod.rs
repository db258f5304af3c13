//! Shared by the integration tests: finding the test servers that `scripts/test` started.

/// The value of a test server's environment variable, or `None` (with the reason printed) when it
/// is not set — unless `OUTPOST_TEST_REQUIRE_SERVERS=1` (as in CI), which makes it a failure.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) => Some(value),
        Err(_) if std::env::var("OUTPOST_TEST_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!(
                "{var} is not set but OUTPOST_TEST_REQUIRE_SERVERS=1: start the servers with scripts/test"
            )
        }
        Err(_) => {
            eprintln!("skipped: {var} is not set (run scripts/test to start the test servers)");
            None
        }
    }
}
