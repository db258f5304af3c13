//! Bucket URLs: which backend, which bucket, which prefix and which options (pure, no I/O).
//!
//! ```text
//! file:///var/lib/outpost          a local folder (also file://./relative/folder)
//! memory://name                    an in-process store shared by name (tests, demo)
//! s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000&path_style=true
//! gs://bucket/prefix
//! az://container/prefix?account=myaccount
//! ```
//! Options common to the cloud backends: `retries` (default 10), `retry_timeout` (seconds,
//! default 180) and `allow_http` (default false, but true for an S3 `endpoint=http://…`).
//! Unknown options are refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::Error;

/// Where a bucket lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A local folder; conditional writes are provided by outpost itself.
    Folder { root: PathBuf },
    /// An in-process store, shared by every `memory://<name>` opened in the same process.
    Memory { name: String },
    /// Amazon S3 or an S3-compatible server.
    S3 {
        bucket: String,
        region: Option<String>,
        /// A custom endpoint for S3-compatible stores.
        endpoint: Option<String>,
        /// Path-style requests; when not given: true with a custom endpoint (from the URL or
        /// `AWS_ENDPOINT_URL`), false for AWS itself.
        path_style: Option<bool>,
        /// Tag each segment with [`crate::store::SEGMENT_TAG`] so lifecycle rules can select
        /// segments alone (S3 filters by prefix, size and tags, never by suffix).
        tag_segments: bool,
    },
    /// Google Cloud Storage.
    Gcs { bucket: String },
    /// Azure Blob Storage.
    Azure {
        container: String,
        account: Option<String>,
        endpoint: Option<String>,
        emulator: bool,
    },
}

/// How long and how often the cloud clients retry transient failures (with jittered backoff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOptions {
    pub max_retries: usize,
    pub retry_timeout_secs: u64,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_retries: 10,
            retry_timeout_secs: 180,
        }
    }
}

/// A parsed bucket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    pub backend: Backend,
    /// The key prefix inside the bucket (empty for the bucket root).
    pub prefix: String,
    pub retry: RetryOptions,
    /// Whether plain `http://` endpoints are allowed (emulators, S3-compatible servers on a
    /// private network). Option `allow_http`; defaults to true only for an S3 `endpoint` that
    /// starts with `http://`.
    pub allow_http: bool,
    /// The URL as given, for messages (bucket URLs carry no secrets: credentials come from the
    /// environment).
    pub url: String,
}

impl BucketLocation {
    /// Parses a bucket URL; every error names the URL and what is wrong with it.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_string(),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(
                "expected <scheme>://…, with scheme file, memory, s3, gs or az".into(),
            ));
        };
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, query),
            None => (rest, ""),
        };
        let mut options = parse_query(query).map_err(&invalid)?;
        let (bucket, prefix) = match body.split_once('/') {
            Some((bucket, prefix)) => (bucket.to_string(), prefix.trim_matches('/').to_string()),
            None => (body.to_string(), String::new()),
        };
        let need_bucket = |what: &str| {
            if bucket.is_empty() {
                Err(invalid(format!("the {what} name is missing")))
            } else if !bucket
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                Err(invalid(format!("{bucket:?} is not a valid {what} name")))
            } else {
                Ok(bucket.clone())
            }
        };
        let (backend, prefix) = match scheme {
            "file" => {
                if body.is_empty() {
                    return Err(invalid("the folder path is missing".into()));
                }
                (
                    Backend::Folder {
                        root: PathBuf::from(body),
                    },
                    String::new(),
                )
            }
            "memory" => (
                Backend::Memory {
                    name: body.to_string(),
                },
                String::new(),
            ),
            "s3" | "s3a" => {
                let bucket = need_bucket("bucket")?;
                let endpoint = options.remove("endpoint");
                let region = options.remove("region");
                let path_style = take_bool(&mut options, "path_style").map_err(&invalid)?;
                let tag_segments = take_bool(&mut options, "tag_segments")
                    .map_err(&invalid)?
                    .unwrap_or(true);
                (
                    Backend::S3 {
                        bucket,
                        region,
                        endpoint,
                        path_style,
                        tag_segments,
                    },
                    prefix,
                )
            }
            "gs" | "gcs" => (
                Backend::Gcs {
                    bucket: need_bucket("bucket")?,
                },
                prefix,
            ),
            "az" | "azure" => {
                let container = need_bucket("container")?;
                let account = options.remove("account");
                let endpoint = options.remove("endpoint");
                let emulator = take_bool(&mut options, "emulator")
                    .map_err(&invalid)?
                    .unwrap_or(false);
                (
                    Backend::Azure {
                        container,
                        account,
                        endpoint,
                        emulator,
                    },
                    prefix,
                )
            }
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}; use file, memory, s3, gs or az"
                )));
            }
        };
        let http_endpoint =
            matches!(&backend, Backend::S3 { endpoint: Some(e), .. } if e.starts_with("http://"));
        let allow_http = take_bool(&mut options, "allow_http")
            .map_err(&invalid)?
            .unwrap_or(http_endpoint);
        let mut retry = RetryOptions::default();
        if let Some(n) = options.remove("retries") {
            retry.max_retries = n
                .parse()
                .map_err(|_| invalid(format!("retries={n:?} is not a whole number")))?;
        }
        if let Some(n) = options.remove("retry_timeout") {
            retry.retry_timeout_secs = n
                .parse()
                .map_err(|_| invalid(format!("retry_timeout={n:?} is not a number of seconds")))?;
        }
        if let Some(unknown) = options.keys().next() {
            return Err(invalid(format!("unknown option {unknown:?}")));
        }
        Ok(Self {
            backend,
            prefix,
            retry,
            allow_http,
            url: url.to_string(),
        })
    }
}

fn parse_query(query: &str) -> Result<BTreeMap<String, String>, String> {
    let mut options = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if options.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("option {key:?} is given twice"));
        }
    }
    Ok(options)
}

fn take_bool(options: &mut BTreeMap<String, String>, key: &str) -> Result<Option<bool>, String> {
    match options.remove(key).as_deref() {
        None => Ok(None),
        Some("true" | "1" | "yes" | "") => Ok(Some(true)),
        Some("false" | "0" | "no") => Ok(Some(false)),
        Some(other) => Err(format!("{key}={other:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_and_memory() {
        let l = BucketLocation::parse("file:///var/lib/outpost").unwrap();
        assert_eq!(
            l.backend,
            Backend::Folder {
                root: "/var/lib/outpost".into()
            }
        );
        let l = BucketLocation::parse("file://./demo").unwrap();
        assert_eq!(
            l.backend,
            Backend::Folder {
                root: "./demo".into()
            }
        );
        let l = BucketLocation::parse("memory://t1").unwrap();
        assert_eq!(l.backend, Backend::Memory { name: "t1".into() });
    }

    #[test]
    fn s3_urls_with_endpoints_and_options() {
        let l = BucketLocation::parse(
            "s3://b/fleet/prod/?endpoint=http://127.0.0.1:9000&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(l.prefix, "fleet/prod");
        assert_eq!(
            l.backend,
            Backend::S3 {
                bucket: "b".into(),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                path_style: None,
                tag_segments: true,
            }
        );
        assert!(l.allow_http);
        let l = BucketLocation::parse("s3://b").unwrap();
        assert!(matches!(
            l.backend,
            Backend::S3 {
                path_style: None,
                ..
            }
        ));
        assert!(!l.allow_http);
        let l = BucketLocation::parse(
            "s3://b?path_style=false&retries=3&retry_timeout=20&tag_segments=no",
        )
        .unwrap();
        assert!(matches!(
            l.backend,
            Backend::S3 {
                path_style: Some(false),
                tag_segments: false,
                ..
            }
        ));
        assert_eq!(
            l.retry,
            RetryOptions {
                max_retries: 3,
                retry_timeout_secs: 20
            }
        );
    }

    #[test]
    fn gcs_and_azure() {
        assert_eq!(
            BucketLocation::parse("gs://b/p").unwrap().backend,
            Backend::Gcs { bucket: "b".into() }
        );
        let l = BucketLocation::parse("az://c/p?account=acct&emulator=true").unwrap();
        assert_eq!(
            l.backend,
            Backend::Azure {
                container: "c".into(),
                account: Some("acct".into()),
                endpoint: None,
                emulator: true
            }
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expect) in [
            ("/tmp/x", "scheme"),
            ("ftp://x", "unknown scheme"),
            ("s3://", "bucket name is missing"),
            ("s3://b?colour=red", "unknown option \"colour\""),
            ("s3://b?path_style=maybe", "not true or false"),
            ("s3://b?retries=many", "not a whole number"),
            ("s3://b?region=a&region=b", "given twice"),
            ("s3://b@d", "not a valid bucket name"),
            ("file://", "folder path is missing"),
        ] {
            let err = BucketLocation::parse(url).unwrap_err().to_string();
            assert!(err.contains(expect) && err.contains(url), "{url}: {err}");
        }
    }
}
