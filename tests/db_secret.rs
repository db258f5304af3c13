//! `--db-secret`: `outpost index` and `outpost status` read their database URL from an AWS
//! Secrets Manager secret (moto's, on the endpoint of OUTPOST_TEST_S3_URL), as a URL or as RDS's
//! JSON, and say which secret and what was wrong when they cannot.

use std::process::{Command, Output};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use outpost::indexer::Database;
use outpost::store::Store;
use outpost::test_support::rows::stored_rows;
use outpost::test_support::sim::SimCluster;

mod common;

/// Moto's endpoint (every AWS service is served on the one of its S3).
fn endpoint() -> Option<String> {
    let url = common::server_url("OUTPOST_TEST_S3_URL")?;
    let parsed = url::Url::parse(&url).unwrap();
    let endpoint = parsed
        .query_pairs()
        .find(|(key, _)| key == "endpoint")
        .map(|(_, value)| value.into_owned());
    Some(endpoint.unwrap_or_else(|| panic!("no endpoint= in {url}")))
}

fn client(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

/// Creates a secret of a fresh name holding `value`; returns its ARN.
async fn create_secret(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    let name = format!("outpost-test/db-{:08x}", rand::random::<u32>());
    let created = client
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "CreateSecret {name}: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            )
        });
    created.arn().expect("an ARN").to_string()
}

/// `outpost ARGS` with the AWS settings pointing at moto and nothing else of the AWS environment.
fn outpost(endpoint: &str, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_outpost"));
    for var in [
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "OUTPOST_DB",
        "OUTPOST_DB_SECRET",
    ] {
        command.env_remove(var);
    }
    command
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

/// A folder bucket holding one shipped cluster named `name`.
async fn bucket_with(dir: &std::path::Path, name: &str) -> String {
    let bucket = format!("file://{}/bucket", dir.display());
    std::fs::create_dir_all(dir.join("bucket")).unwrap();
    let store = Store::open(&bucket).await.unwrap();
    SimCluster::new(&store, name, 7, 40).ship().await;
    bucket
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_holding_a_url_gives_index_and_status_their_database() {
    let Some(endpoint) = endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bucket = bucket_with(dir.path(), "sm-url").await;
    let db = format!("sqlite://{}/cache.db", dir.path().display());
    let arn = create_secret(&client(&endpoint), &db).await;

    let output = outpost(
        &endpoint,
        &["index", "--bucket", &bucket, "--db-secret", &arn, "--once"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("sm-url: applied"),
        "{}",
        text(&output.stdout)
    );
    let database = Database::connect_reader(&db).await.unwrap();
    assert!(!stored_rows(&database, "sm-url").await.is_empty());

    let output = outpost(&endpoint, &["status", "--db-secret", &arn, "--json"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("\"sm-url\""),
        "{}",
        text(&output.stdout)
    );
}

/// RDS's JSON for a PostgreSQL role whose name needs percent-encoding: the driver connects as
/// that very role to that database. (The test server trusts local connections, so the password
/// is carried but not checked; its encoding is unit-tested in `indexer::db::secret`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_holding_rds_json_connects_as_its_user() {
    let Some(endpoint) = endpoint() else { return };
    let Some(admin_url) = common::server_url("OUTPOST_TEST_POSTGRES_URL") else {
        return;
    };
    let test_db = outpost::test_support::db::server_database(&admin_url, "outpost_secret").await;
    let dbname = test_db.name().unwrap().to_string();
    let role = format!("o@p:s/{:08x}%", rand::random::<u32>());
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&admin_url).await.unwrap();
    for sql in [
        format!("CREATE ROLE \"{role}\" LOGIN PASSWORD 'p@ss/w:rd%41 ü'"),
        format!("ALTER DATABASE {dbname} OWNER TO \"{role}\""),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    let server = url::Url::parse(&admin_url).unwrap();
    let json = serde_json::json!({
        "engine": "postgres",
        "host": server.host_str().unwrap(),
        "port": server.port().unwrap_or(5432),
        "username": role,
        "password": "p@ss/w:rd%41 ü",
        "dbname": dbname,
        "dbInstanceIdentifier": "outpost-test",
    });
    let arn = create_secret(&client(&endpoint), &json.to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = bucket_with(dir.path(), "sm-json").await;

    let output = outpost(
        &endpoint,
        &["index", "--bucket", &bucket, "--db-secret", &arn, "--once"],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The tables were made by that role: the URL named it and its database.
    let owner: String = sqlx::query_scalar(
        "SELECT tableowner::text FROM pg_tables WHERE tablename = 'outpost_clusters' AND schemaname = 'public'",
    )
    .fetch_one(&sqlx::AnyPool::connect(&test_db.url).await.unwrap())
    .await
    .unwrap();
    assert_eq!(owner, role);
    let database = Database::connect_reader(&test_db.url).await.unwrap();
    assert!(!stored_rows(&database, "sm-json").await.is_empty());
    database.close().await;
    test_db.drop_database().await;
    sqlx::query(&format!("DROP ROLE \"{role}\""))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_secrets_are_named_with_the_reason_and_never_the_password() {
    let Some(endpoint) = endpoint() else { return };
    let client = client(&endpoint);
    let dir = tempfile::tempdir().unwrap();
    let bucket = format!("file://{}", dir.path().display());
    let password = format!("hunter2-{:08x}", rand::random::<u32>());
    let cases = [
        (
            create_secret(
                &client,
                &serde_json::json!({"engine": "oracle-ee", "host": "db", "username": "u",
                    "password": password})
                .to_string(),
            )
            .await,
            "unknown engine \"oracle-ee\"",
        ),
        (
            create_secret(
                &client,
                &serde_json::json!({"engine": "postgres", "username": "u", "password": password})
                    .to_string(),
            )
            .await,
            "field \"host\" is missing",
        ),
        (
            create_secret(&client, &password).await,
            "neither a database URL",
        ),
        (
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:outpost-test/absent-AbCdEf"
                .to_string(),
            "ResourceNotFoundException",
        ),
    ];
    for (arn, reason) in &cases {
        let output = outpost(
            &endpoint,
            &["index", "--bucket", &bucket, "--db-secret", arn, "--once"],
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(arn.as_str()) && stderr.contains(reason),
            "{reason}: {stderr}"
        );
        assert!(!stderr.contains(&password), "{stderr}");
    }

    // Exactly one of --db and --db-secret.
    let db = format!("sqlite://{}/cache.db", dir.path().display());
    let output = outpost(
        &endpoint,
        &[
            "index",
            "--bucket",
            &bucket,
            "--db",
            &db,
            "--db-secret",
            &cases[0].0,
        ],
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    let output = outpost(&endpoint, &["index", "--bucket", &bucket, "--once"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--db") && stderr.contains("--db-secret"),
        "{stderr}"
    );
}
