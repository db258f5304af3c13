//! Opening buckets as a user would: AWS credentials from a shared-config profile (through
//! aws-config, which object_store alone does not read), and clear errors for unreachable or
//! malformed buckets. Runs `outpost inspect` as a subprocess with a controlled environment.

use std::process::Command;

mod common;

fn outpost() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outpost"));
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        command.env_remove(var);
    }
    command.env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

/// A profile whose credentials come from `credential_process` is used: the process runs (it
/// leaves a marker) and the S3 server accepts the signed requests.
#[test]
fn s3_credentials_come_from_a_shared_config_profile() {
    let Some(base) = common::server_url("OUTPOST_TEST_S3_URL") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("credential-process-ran");
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile outpost-test]\nregion = us-east-1\ncredential_process = sh -c 'touch {}; echo {{\\\"Version\\\": 1, \\\"AccessKeyId\\\": \\\"AKIDPROFILE\\\", \\\"SecretAccessKey\\\": \\\"profile-secret\\\"}}'\n",
            marker.display()
        ),
    )
    .unwrap();
    let output = outpost()
        .args(["inspect", &base])
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_PROFILE", "outpost-test")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        marker.exists(),
        "the profile's credential_process did not run"
    );
}

#[test]
fn an_unreachable_bucket_is_an_error_naming_it() {
    let url = "s3://nowhere?endpoint=http://127.0.0.1:9&retries=0&retry_timeout=1";
    let output = outpost()
        .args(["inspect", url])
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("outpost/v1/clusters") && stderr.contains("list"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error:")).count(),
        1,
        "the error is printed once: {stderr}"
    );
    assert_eq!(
        stderr.matches("Connection refused").count(),
        1,
        "each cause is said once: {stderr}"
    );
}

#[test]
fn malformed_urls_and_names_are_refused_before_any_request() {
    for (args, expect) in [
        (vec!["inspect", "s3://b?colour=red"], "unknown option"),
        (
            vec!["inspect", "memory://x", "--cluster", "../etc"],
            "invalid cluster name",
        ),
        (
            vec![
                "inspect",
                "memory://x",
                "--segment",
                "outpost/v1/clusters/a/head.json",
            ],
            "invalid key",
        ),
        (vec!["inspect", "s3://b/../x"], "invalid key prefix"),
    ] {
        let output = outpost().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expect), "{args:?}: {stderr}");
    }
}
