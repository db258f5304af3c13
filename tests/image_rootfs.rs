//! The container image's root filesystem as `scripts/package image-rootfs` assembles it (the
//! Dockerfile's runtime stage is exactly that directory): started with chroot as uid 65532,
//! without Docker, the binary runs from it alone, and indexes a bucket into a database in its
//! /tmp. And `scripts/package check-glibc`, which keeps the Lambda zip within Amazon Linux
//! 2023's glibc, refuses a binary needing a newer one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use outpost::indexer::Database;
use outpost::store::Store;
use outpost::test_support::rows::stored_rows;
use outpost::test_support::sim::SimCluster;

fn package(args: &[&str]) -> Command {
    let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/package"));
    command.args(args);
    command
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether this process is root (chroot needs it), from /proc rather than a libc call.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("Uid:"))
                .map(|line| line.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Every path under `root`, relative, with `/` for the root itself.
fn tree(root: &Path) -> Vec<String> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            paths.push(format!("/{}", path.strip_prefix(root).unwrap().display()));
            if path.is_dir() && !path.is_symlink() {
                stack.push(path);
            }
        }
    }
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_root_runs_the_binary_as_uid_65532_with_nothing_else() {
    if !is_root() {
        assert_ne!(
            std::env::var("OUTPOST_TEST_REQUIRE_SERVERS").as_deref(),
            Ok("1"),
            "chroot needs root, and OUTPOST_TEST_REQUIRE_SERVERS=1"
        );
        eprintln!("skipped: chroot needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let output = package(&["image-rootfs", env!("CARGO_BIN_EXE_outpost")])
        .arg(&root)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));

    // What the image holds: the binary, the loader and the libraries it names, the CA bundle,
    // users and groups, and the empty /tmp and home; no shell, nothing else.
    let paths = tree(&root);
    for expected in [
        "/outpost",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/ssl/certs/ca-certificates.crt",
        "/tmp",
        "/home/nonroot",
    ] {
        assert!(paths.iter().any(|p| p == expected), "{expected}: {paths:?}");
    }
    assert!(
        paths.iter().any(|p| p.contains("/ld-linux"))
            && paths.iter().any(|p| p.ends_with("/libc.so.6")),
        "{paths:?}"
    );
    let unexpected: Vec<&String> = paths
        .iter()
        .filter(|p| {
            !(p.starts_with("/etc")
                || p.starts_with("/home")
                || p.starts_with("/lib")
                || *p == "/outpost"
                || *p == "/tmp")
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.ends_with("/sh") || p.ends_with("bash"))
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("nonroot:x:65532:65532:"), "{passwd}");
    let tmp = std::fs::metadata(root.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    assert_eq!(std::fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    // The binary is stripped: no symbol table left.
    let symbols = Command::new("objdump")
        .arg("-t")
        .arg(root.join("outpost"))
        .output()
        .unwrap();
    assert!(text(&symbols).contains("no symbols"), "{}", text(&symbols));

    let chrooted = |args: &[&str]| {
        Command::new("chroot")
            .arg("--userspec=65532:65532")
            .arg(&root)
            .arg("/outpost")
            .args(args)
            // Nothing of this process's environment; PATH only finds chroot itself.
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .output()
            .unwrap()
    };
    let output = chrooted(&["--version"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).starts_with("outpost "), "{}", text(&output));
    let output = chrooted(&["index", "--help"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("--db-secret"), "{}", text(&output));

    // A cluster shipped into the image's /tmp, indexed there by uid 65532 into a SQLite file it
    // creates in /tmp.
    let bucket = root.join("tmp/bucket");
    std::fs::create_dir(&bucket).unwrap();
    let store = Store::open(&format!("file://{}", bucket.display()))
        .await
        .unwrap();
    SimCluster::new(&store, "image-a", 3, 20).ship().await;
    let output = chrooted(&[
        "index",
        "--bucket",
        "file:///tmp/bucket",
        "--db",
        "sqlite:///tmp/cache.db",
        "--once",
    ]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("image-a: applied"),
        "{}",
        text(&output)
    );
    let db = root.join("tmp/cache.db");
    let owner = std::fs::metadata(&db).unwrap();
    assert_eq!((owner.uid(), owner.gid()), (65532, 65532));
    let database = Database::connect_reader(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    assert!(!stored_rows(&database, "image-a").await.is_empty());
}

#[test]
fn check_glibc_refuses_a_binary_needing_a_newer_glibc_than_its_limit() {
    let binary = env!("CARGO_BIN_EXE_outpost");
    let output = package(&["check-glibc", binary]).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("at most GLIBC_2.34"),
        "{}",
        text(&output)
    );

    // Every Rust binary on glibc references GLIBC_2.2.5 or newer, so a limit of 2.1 refuses it,
    // naming the symbols and how to build for that glibc.
    let output = package(&["check-glibc", binary])
        .env("OUTPOST_PACKAGE_MAX_GLIBC", "2.1")
        .output()
        .unwrap();
    let message = text(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert!(
        message.contains("newer than the limit GLIBC_2.1 "),
        "{message}"
    );
    assert!(message.contains("GLIBC_2.2.5 "), "{message}");
    assert!(message.contains("cargo zigbuild"), "{message}");
}
