//! The database URL kept in an AWS Secrets Manager secret (`--db-secret`), so that a Lambda
//! function or a pod is given a secret's ARN instead of a password: the secret's `SecretString`
//! is either a database URL or the JSON RDS keeps for a database's credentials.

use serde::Deserialize;
use serde_json::Value;

/// Why no database URL came out of a secret. Every variant names the secret; none carries the
/// secret's value, which holds a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read secret {secret} from AWS Secrets Manager: {reason}")]
    Read { secret: String, reason: String },
    #[error("secret {secret} has no SecretString (a binary secret cannot hold a database URL)")]
    NoSecretString { secret: String },
    #[error(
        "secret {secret} is neither a database URL (postgres://, mysql:// or sqlite://) nor RDS's JSON ({{\"engine\", \"host\", \"port\", \"username\", \"password\", \"dbname\"}}): {reason}"
    )]
    Unrecognized { secret: String, reason: String },
    #[error(
        "secret {secret}: field {field:?} is missing (RDS's JSON needs engine, host, username and password)"
    )]
    MissingField { secret: String, field: &'static str },
    #[error("secret {secret}: field {field:?} is {found}, expected {expected}")]
    FieldType {
        secret: String,
        field: &'static str,
        found: &'static str,
        expected: &'static str,
    },
    #[error(
        "secret {secret}: unknown engine {engine:?} (expected postgres, mysql or mariadb, or aurora-postgresql / aurora-mysql)"
    )]
    UnknownEngine { secret: String, engine: String },
    #[error("secret {secret}: invalid port {port:?}: expected a number from 1 to 65535")]
    Port { secret: String, port: String },
}

/// The URL scheme of each engine RDS names in its secrets.
fn scheme_of(engine: &str) -> Option<&'static str> {
    match engine {
        "postgres" | "postgresql" | "aurora-postgresql" => Some("postgres"),
        "mysql" | "aurora-mysql" | "aurora" => Some("mysql"),
        "mariadb" => Some("mariadb"),
        _ => None,
    }
}

/// `text` percent-encoded for a URL's user or password: every byte but the unreserved ones
/// (letters, digits, `-._~`), so that `@`, `/`, `:` and `%` itself survive the trip through the
/// database driver's URL parser.
pub fn encode_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The name of a JSON value's type, for messages (never the value itself: it may be the
/// password).
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The fields of RDS's JSON this reads; the others (`dbClusterIdentifier`, …) are ignored.
#[derive(Deserialize)]
struct RdsFields {
    engine: Option<Value>,
    host: Option<Value>,
    port: Option<Value>,
    username: Option<Value>,
    password: Option<Value>,
    dbname: Option<Value>,
}

/// A required or optional string field.
fn string_field(
    secret: &str,
    field: &'static str,
    value: Option<&Value>,
) -> Result<Option<String>, Error> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(other) => Err(Error::FieldType {
            secret: secret.to_string(),
            field,
            found: type_name(other),
            expected: "a string",
        }),
    }
}

fn required(secret: &str, field: &'static str, value: Option<&Value>) -> Result<String, Error> {
    match string_field(secret, field, value)? {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(Error::MissingField {
            secret: secret.to_string(),
            field,
        }),
    }
}

/// The port, as a number or as a string of digits (both occur in secrets written by hand).
fn port(secret: &str, value: Option<&Value>) -> Result<Option<u16>, Error> {
    let invalid = |port: String| Error::Port {
        secret: secret.to_string(),
        port,
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64().and_then(|n| u16::try_from(n).ok()) {
            Some(port) if port > 0 => Ok(Some(port)),
            _ => Err(invalid(n.to_string())),
        },
        Some(Value::String(text)) => match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port)),
            _ => Err(invalid(text.clone())),
        },
        Some(other) => Err(Error::FieldType {
            secret: secret.to_string(),
            field: "port",
            found: type_name(other),
            expected: "a number",
        }),
    }
}

/// The database URL a secret's `SecretString` stands for: the text itself when it is a
/// database URL, or the URL built from RDS's JSON (user and password percent-encoded, the
/// database name as its path). `secret` (the ARN) is only used to name it in errors.
pub fn database_url(secret: &str, secret_string: &str) -> Result<String, Error> {
    let text = secret_string.trim();
    if text.starts_with('{') {
        return from_rds_json(secret, text);
    }
    let unrecognized = |reason: String| Error::Unrecognized {
        secret: secret.to_string(),
        reason,
    };
    // url's parse errors name what is wrong, never the input.
    let parsed = url::Url::parse(text).map_err(|e| unrecognized(format!("not a URL: {e}")))?;
    match parsed.scheme() {
        "postgres" | "postgresql" | "mysql" | "mariadb" | "sqlite" => Ok(text.to_string()),
        other => Err(unrecognized(format!("unsupported URL scheme {other:?}"))),
    }
}

fn from_rds_json(secret: &str, text: &str) -> Result<String, Error> {
    let fields: RdsFields = serde_json::from_str(text).map_err(|e| Error::Unrecognized {
        secret: secret.to_string(),
        // serde_json's messages name a line and column and what was expected, not the text.
        reason: format!("invalid JSON object: {e}"),
    })?;
    let engine = required(secret, "engine", fields.engine.as_ref())?;
    let scheme = scheme_of(&engine).ok_or_else(|| Error::UnknownEngine {
        secret: secret.to_string(),
        engine: engine.clone(),
    })?;
    let host = required(secret, "host", fields.host.as_ref())?;
    let username = required(secret, "username", fields.username.as_ref())?;
    let password = required(secret, "password", fields.password.as_ref())?;
    let port = port(secret, fields.port.as_ref())?;
    let dbname = string_field(secret, "dbname", fields.dbname.as_ref())?;
    // An IPv6 address is bracketed in a URL.
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    let mut url = format!(
        "{scheme}://{}:{}@{host}",
        encode_userinfo(&username),
        encode_userinfo(&password)
    );
    if let Some(port) = port {
        url.push_str(&format!(":{port}"));
    }
    if let Some(dbname) = dbname.filter(|name| !name.is_empty()) {
        url.push('/');
        url.push_str(&encode_userinfo(&dbname));
    }
    Ok(url)
}

/// The region of a secret's ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`), which is
/// where the secret must be read; none for a secret given by name.
pub fn region_of(secret: &str) -> Option<&str> {
    let mut parts = secret.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_partition), Some("secretsmanager"), Some(region))
            if !region.is_empty() =>
        {
            Some(region)
        }
        _ => None,
    }
}

/// Reads `secret` (an ARN, or a name in the default region) with credentials from aws-config's
/// default chain and returns the database URL it holds.
pub async fn read_database_url(secret: &str) -> Result<String, Error> {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut builder = aws_sdk_secretsmanager::config::Builder::from(&config);
    if let Some(region) = region_of(secret) {
        builder = builder.region(aws_sdk_secretsmanager::config::Region::new(
            region.to_string(),
        ));
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(builder.build());
    let answer = client
        .get_secret_value()
        .secret_id(secret)
        .send()
        .await
        .map_err(|e| Error::Read {
            secret: secret.to_string(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let text = answer
        .secret_string()
        .ok_or_else(|| Error::NoSecretString {
            secret: secret.to_string(),
        })?;
    database_url(secret, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:outpost-db-AbCdEf";

    /// The user and password a database driver reads back from `url`.
    fn userinfo(url: &str) -> (String, String) {
        let parsed = url::Url::parse(url).unwrap();
        let decode = |text: &str| {
            let bytes: Vec<u8> = {
                let raw = text.as_bytes();
                let mut out = Vec::new();
                let mut i = 0;
                while i < raw.len() {
                    if raw[i] == b'%' {
                        out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                        i += 3;
                    } else {
                        out.push(raw[i]);
                        i += 1;
                    }
                }
                out
            };
            String::from_utf8(bytes).unwrap()
        };
        (
            decode(parsed.username()),
            decode(parsed.password().unwrap()),
        )
    }

    fn rds(engine: &str, username: &str, password: &str) -> String {
        serde_json::json!({
            "engine": engine, "host": "db.example.internal", "port": 5432,
            "username": username, "password": password, "dbname": "clouddriver",
            "dbClusterIdentifier": "ignored"
        })
        .to_string()
    }

    #[test]
    fn a_url_is_taken_as_it_is() {
        for url in [
            "postgres://clouddriver:pw@db/clouddriver",
            "postgresql://db/clouddriver",
            "mysql://root:p%40ss@127.0.0.1:3306/clouddriver",
            "mariadb://u@h/d",
            "sqlite:///var/tmp/cache.db",
        ] {
            assert_eq!(database_url(ARN, url).unwrap(), url);
            assert_eq!(database_url(ARN, &format!("  {url}\n")).unwrap(), url);
        }
    }

    #[test]
    fn rds_json_becomes_a_url_per_engine() {
        for (engine, scheme) in [
            ("postgres", "postgres"),
            ("aurora-postgresql", "postgres"),
            ("mysql", "mysql"),
            ("aurora-mysql", "mysql"),
            ("mariadb", "mariadb"),
        ] {
            assert_eq!(
                database_url(ARN, &rds(engine, "clouddriver", "secret")).unwrap(),
                format!("{scheme}://clouddriver:secret@db.example.internal:5432/clouddriver")
            );
        }
    }

    #[test]
    fn odd_users_and_passwords_survive_the_url() {
        let odd = [
            "p@ss",
            "a/b/c",
            "x:y:z",
            "100%",
            "%41%",
            "pässwörd",
            "密码🔑",
            "sp ace+plus",
            "#?&=;[]{}|\\^`'\"<>,!$*()",
            "~-._",
            ":@/%",
        ];
        for text in odd {
            let url = database_url(ARN, &rds("postgres", text, text)).unwrap();
            assert_eq!(
                userinfo(&url),
                (text.to_string(), text.to_string()),
                "{url}"
            );
            let parsed = url::Url::parse(&url).unwrap();
            assert_eq!(parsed.host_str(), Some("db.example.internal"), "{url}");
            assert_eq!(parsed.port(), Some(5432), "{url}");
            assert_eq!(parsed.path(), "/clouddriver", "{url}");
            // The database layer accepts it, and masks the password in what it prints.
            let (_, display) = crate::indexer::db::parse_url(&url).unwrap();
            assert!(display.contains("***"), "{display}");
        }
    }

    #[test]
    fn encoding_leaves_only_unreserved_bytes() {
        assert_eq!(encode_userinfo("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode_userinfo("@/:%"), "%40%2F%3A%25");
        assert_eq!(encode_userinfo("é"), "%C3%A9");
        assert_eq!(encode_userinfo(""), "");
    }

    #[test]
    fn port_and_dbname_are_optional_and_a_port_may_be_a_string() {
        let json = r#"{"engine":"mysql","host":"h","username":"u","password":"p"}"#;
        assert_eq!(database_url(ARN, json).unwrap(), "mysql://u:p@h");
        let json = r#"{"engine":"mysql","host":"h","port":"3307","username":"u","password":"p","dbname":""}"#;
        assert_eq!(database_url(ARN, json).unwrap(), "mysql://u:p@h:3307");
        let json = r#"{"engine":"postgres","host":"h","port":null,"username":"u","password":"p","dbname":"my db"}"#;
        assert_eq!(database_url(ARN, json).unwrap(), "postgres://u:p@h/my%20db");
        let json = r#"{"engine":"postgres","host":"fd00::1","username":"u","password":"p"}"#;
        assert_eq!(database_url(ARN, json).unwrap(), "postgres://u:p@[fd00::1]");
    }

    /// The message of `database_url`'s error, checked to name the secret and never the password.
    fn error(json: &str) -> String {
        let message = database_url(ARN, json).unwrap_err().to_string();
        assert!(message.contains(ARN), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        message
    }

    #[test]
    fn missing_fields_are_named() {
        for field in ["engine", "host", "username", "password"] {
            let mut value: serde_json::Value =
                serde_json::from_str(&rds("postgres", "u", "hunter2")).unwrap();
            value.as_object_mut().unwrap().remove(field);
            let message = error(&value.to_string());
            assert!(
                message.contains(&format!("field \"{field}\" is missing")),
                "{message}"
            );
            value[field] = serde_json::json!("");
            let message = error(&value.to_string());
            assert!(
                message.contains(&format!("field \"{field}\" is missing")),
                "{message}"
            );
        }
        // What RDS keeps for a managed master password: the credentials alone.
        let message = error(r#"{"username":"postgres","password":"hunter2"}"#);
        assert!(message.contains("\"engine\" is missing"), "{message}");
    }

    #[test]
    fn unknown_engines_wrong_types_and_bad_ports_are_refused() {
        let message = error(&rds("oracle-ee", "u", "hunter2"));
        assert!(
            message.contains("unknown engine \"oracle-ee\""),
            "{message}"
        );
        let message = error(r#"{"engine":"postgres","host":"h","username":"u","password":12345}"#);
        assert!(
            message.contains("field \"password\" is a number, expected a string"),
            "{message}"
        );
        for port in ["0", "65536", "\"54x\"", "-1", "5432.5"] {
            let json = format!(
                r#"{{"engine":"postgres","host":"h","port":{port},"username":"u","password":"hunter2"}}"#
            );
            let message = error(&json);
            assert!(message.contains("invalid port"), "{port}: {message}");
        }
        let message = error(
            r#"{"engine":"postgres","host":"h","port":[1],"username":"u","password":"hunter2"}"#,
        );
        assert!(message.contains("\"port\" is an array"), "{message}");
    }

    #[test]
    fn text_that_is_neither_is_refused_without_echoing_it() {
        for text in [
            "hunter2",
            "{\"password\": \"hunter2\"",
            "redis://:hunter2@h",
            "[\"hunter2\"]",
            "",
        ] {
            let message = error(text);
            assert!(
                message.contains("neither a database URL"),
                "{text}: {message}"
            );
        }
    }

    #[test]
    fn the_region_comes_from_an_arn() {
        assert_eq!(region_of(ARN), Some("eu-west-1"));
        assert_eq!(
            region_of("arn:aws-cn:secretsmanager:cn-north-1:1:secret:x"),
            Some("cn-north-1")
        );
        assert_eq!(region_of("outpost/db"), None);
        assert_eq!(region_of("arn:aws:s3:::bucket"), None);
    }
}
