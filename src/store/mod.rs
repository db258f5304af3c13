//! Object storage for outpost: opening a bucket from a URL, the key layout, create-only puts for
//! segments, compare-and-swap for `head.json`, and streaming segment reads.
//!
//! Every backend (S3, GCS, Azure through object_store; a local folder; an in-process memory
//! store) offers the same semantics, checked by one conformance suite (`tests/store_conformance.rs`).
//! The cloud clients retry transient failures (connection errors, timeouts, 5xx, 429) with
//! jittered exponential backoff; other failures are returned at once, mapped to the variants of
//! [`Error`] that callers act on (already exists, conflict, not found, unsupported, transient).

pub mod aws;
mod chain;
pub mod folder;
pub mod layout;
pub mod location;
mod segments;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, RetryConfig, TagSet, UpdateVersion,
};

use crate::format::ClusterName;
pub use chain::ListedStream;
pub use folder::Folder;
pub use layout::{Key, Layout};
pub use location::{Backend, BucketLocation};
pub use segments::SegmentStream;

/// What went wrong talking to a bucket. Every variant names the key or URL concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid bucket URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid key prefix {prefix:?}: {reason}")]
    InvalidPrefix { prefix: String, reason: String },
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    #[error("could not open bucket {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{key}: not found")]
    NotFound { key: String },
    #[error("{key}: already exists (create-only put refused)")]
    AlreadyExists { key: String },
    #[error("{key}: changed since it was read (compare-and-swap lost)")]
    Conflict { key: String },
    #[error("{key}: {operation} is not supported by this store: {source}")]
    Unsupported {
        key: String,
        operation: &'static str,
        #[source]
        source: object_store::Error,
    },
    #[error("{key}: {operation} failed with a transient error after retries: {source}")]
    Transient {
        key: String,
        operation: &'static str,
        #[source]
        source: object_store::Error,
    },
    #[error("{key}: {operation} failed: {source}")]
    Request {
        key: String,
        operation: &'static str,
        #[source]
        source: object_store::Error,
    },
    #[error("{path}: could not {operation}: {source}")]
    Folder {
        path: String,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{key}: {source}")]
    Decode {
        key: String,
        #[source]
        source: crate::format::Error,
    },
    /// A document or a segment is not what the head promises (the message names the key).
    #[error(transparent)]
    Verify(crate::format::Error),
    #[error("{key}: is {size} bytes, more than the {limit} bytes a document may have")]
    TooLarge { key: String, size: u64, limit: u64 },
    #[error("{key}: the reading task failed: {reason}")]
    Task { key: String, reason: String },
}

impl Error {
    /// Whether trying the same operation later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Task { .. })
    }
}

/// The version of an object as the store reports it (ETag and/or generation), used for
/// conditional reads and compare-and-swap writes. Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

impl Version {
    fn update(&self) -> UpdateVersion {
        UpdateVersion {
            e_tag: self.e_tag.clone(),
            version: self.version.clone(),
        }
    }
}

/// The result of a conditional read.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The object still has the version the caller knew.
    Unchanged,
    /// The object's current content and version.
    Changed(Bytes, Version),
    /// There is no such object.
    Missing,
}

#[derive(Debug, Clone)]
enum Inner {
    Objects(Arc<dyn ObjectStore>),
    Folder(Folder),
}

/// An opened bucket: its backend, its layout, and the semantic operations outpost needs.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Inner,
    layout: Layout,
    url: String,
    /// The tags a segment is written with: [`SEGMENT_TAG`] on S3, none elsewhere.
    segment_tags: TagSet,
}

/// The object tag every segment carries on S3 (`docs/FORMAT.md` §7.7): lifecycle rules select
/// segments by it, because S3 filters cannot match a key suffix and a prefix filter would also
/// expire `head.json`, `identity.json` and `decommissioned.json`.
pub const SEGMENT_TAG: (&str, &str) = ("outpost-object", "segment");

/// The largest small document (`head.json`, `identity.json`, …) read whole into memory.
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;

/// In-process stores, shared by name, so an agent and an indexer in one process (the demo,
/// tests) see the same `memory://<name>` bucket.
static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<object_store::memory::InMemory>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

impl Store {
    /// Opens the bucket a URL names (see [`location`] for the URL forms). Credentials come from
    /// the environment, as each cloud's own tools read them.
    pub async fn open(url: &str) -> Result<Self, Error> {
        let location = BucketLocation::parse(url)?;
        let layout = Layout::new(&location.prefix)?;
        let open_error = |source| Error::Open {
            url: url.to_string(),
            source,
        };
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: location.retry.max_retries,
            retry_timeout: Duration::from_secs(location.retry.retry_timeout_secs),
        };
        let mut segment_tags = TagSet::default();
        let inner = match &location.backend {
            Backend::Folder { root } => Inner::Folder(Folder::open(root)?),
            Backend::Memory { name } => {
                let mut stores = MEMORY_STORES.lock().map_err(|_| Error::InvalidUrl {
                    url: url.to_string(),
                    reason: "the in-memory store registry was poisoned".into(),
                })?;
                let store = stores.entry(name.clone()).or_default();
                Inner::Objects(Arc::clone(store) as Arc<dyn ObjectStore>)
            }
            Backend::S3 {
                bucket,
                region,
                endpoint,
                path_style,
                tag_segments,
            } => {
                if *tag_segments {
                    segment_tags.push(SEGMENT_TAG.0, SEGMENT_TAG.1);
                }
                let environment = aws::load_environment().await;
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(
                        region
                            .clone()
                            .or(environment.region)
                            .unwrap_or_else(|| "us-east-1".to_string()),
                    )
                    .with_retry(retry)
                    .with_client_options(ClientOptions::new().with_allow_http(location.allow_http));
                if let Some(provider) = environment.credentials {
                    builder = builder
                        .with_credentials(Arc::new(aws::AwsConfigCredentials::new(provider)));
                }
                if let Some(endpoint) = endpoint.clone().or(environment.endpoint_url) {
                    // A custom endpoint (from the URL or AWS_ENDPOINT_URL) is usually an
                    // S3-compatible server: path-style unless told otherwise.
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(!path_style.unwrap_or(true));
                }
                Inner::Objects(Arc::new(builder.build().map_err(open_error)?))
            }
            Backend::Gcs { bucket } => {
                let builder = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(bucket)
                    .with_retry(retry)
                    .with_client_options(ClientOptions::new().with_allow_http(location.allow_http));
                Inner::Objects(Arc::new(builder.build().map_err(open_error)?))
            }
            Backend::Azure {
                container,
                account,
                endpoint,
                emulator,
            } => {
                let mut builder = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_container_name(container)
                    .with_retry(retry)
                    .with_client_options(ClientOptions::new().with_allow_http(location.allow_http));
                if let Some(account) = account {
                    builder = builder.with_account(account);
                }
                if let Some(endpoint) = endpoint {
                    builder = builder.with_endpoint(endpoint.clone());
                }
                if *emulator {
                    builder = builder.with_use_emulator(true);
                }
                Inner::Objects(Arc::new(builder.build().map_err(open_error)?))
            }
        };
        Ok(Self {
            inner,
            layout,
            url: url.to_string(),
            segment_tags,
        })
    }

    /// The URL this store was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key layout of this bucket.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Reads a whole (small) object and its version.
    pub async fn get(&self, key: &Key) -> Result<(Bytes, Version), Error> {
        match self.get_if_changed(key, None).await? {
            Fetched::Changed(bytes, version) => Ok((bytes, version)),
            Fetched::Unchanged | Fetched::Missing => Err(Error::NotFound {
                key: key.to_string(),
            }),
        }
    }

    /// Reads a whole (small) object unless it still has version `known` (a conditional GET:
    /// an unchanged head costs no transfer).
    pub async fn get_if_changed(
        &self,
        key: &Key,
        known: Option<&Version>,
    ) -> Result<Fetched, Error> {
        match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), key.path.clone());
                match blocking(key, move || folder.get(&path)).await {
                    Ok((_, version)) if Some(&version) == known => Ok(Fetched::Unchanged),
                    Ok((bytes, version)) => Ok(Fetched::Changed(bytes, version)),
                    Err(Error::NotFound { .. }) => Ok(Fetched::Missing),
                    Err(e) => Err(e),
                }
            }
            Inner::Objects(objects) => {
                let options = GetOptions {
                    if_none_match: known.and_then(|v| v.e_tag.clone()),
                    ..GetOptions::default()
                };
                let result = match objects.get_opts(&key.path, options).await {
                    Ok(result) => result,
                    Err(object_store::Error::NotModified { .. }) => return Ok(Fetched::Unchanged),
                    Err(object_store::Error::NotFound { .. }) => return Ok(Fetched::Missing),
                    Err(e) => return Err(classify(key, "get", e)),
                };
                if result.meta.size > MAX_DOCUMENT_BYTES {
                    return Err(Error::TooLarge {
                        key: key.to_string(),
                        size: result.meta.size,
                        limit: MAX_DOCUMENT_BYTES,
                    });
                }
                let version = Version {
                    e_tag: result.meta.e_tag.clone(),
                    version: result.meta.version.clone(),
                };
                let bytes = result.bytes().await.map_err(|e| classify(key, "get", e))?;
                Ok(Fetched::Changed(bytes, version))
            }
        }
    }

    /// The stored size of an object.
    pub async fn size(&self, key: &Key) -> Result<u64, Error> {
        match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), key.path.clone());
                blocking(key, move || folder.size(&path)).await
            }
            Inner::Objects(objects) => objects
                .head(&key.path)
                .await
                .map(|meta| meta.size)
                .map_err(|e| classify(key, "head", e)),
        }
    }

    /// Writes an object that must not exist (the first `head.json`, `decommissioned.json`). A
    /// retry of a write whose first attempt landed but whose answer was lost is recognised by
    /// content and counts as success.
    pub async fn put_create(&self, key: &Key, bytes: Bytes) -> Result<Version, Error> {
        self.put_conditional(key, bytes, None, TagSet::default())
            .await
    }

    /// Writes a segment: a create-only put, tagged with [`SEGMENT_TAG`] on S3.
    pub async fn put_segment(&self, key: &Key, bytes: Bytes) -> Result<Version, Error> {
        self.put_conditional(key, bytes, None, self.segment_tags.clone())
            .await
    }

    /// Replaces an object only if it still has version `expected` (the head CAS). A retry whose
    /// first attempt landed is recognised by content and counts as success.
    pub async fn put_update(
        &self,
        key: &Key,
        bytes: Bytes,
        expected: &Version,
    ) -> Result<Version, Error> {
        self.put_conditional(key, bytes, Some(expected.clone()), TagSet::default())
            .await
    }

    /// A create-only put (`expected` is `None`) or a compare-and-swap put.
    async fn put_conditional(
        &self,
        key: &Key,
        bytes: Bytes,
        expected: Option<Version>,
        tags: TagSet,
    ) -> Result<Version, Error> {
        let result = match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path, data) = (folder.clone(), key.path.clone(), bytes.clone());
                blocking(key, move || match &expected {
                    None => folder.create(&path, &data),
                    Some(expected) => folder.update(&path, &data, expected),
                })
                .await
            }
            Inner::Objects(objects) => {
                let (mode, operation) = match &expected {
                    None => (PutMode::Create, "create-only put"),
                    Some(v) => (PutMode::Update(v.update()), "compare-and-swap put"),
                };
                let options = PutOptions {
                    mode,
                    tags,
                    ..PutOptions::default()
                };
                objects
                    .put_opts(&key.path, PutPayload::from_bytes(bytes.clone()), options)
                    .await
                    .map(|r| Version {
                        e_tag: r.e_tag,
                        version: r.version,
                    })
                    .map_err(|e| classify(key, operation, e))
            }
        };
        match result {
            Err(Error::AlreadyExists { .. } | Error::Conflict { .. }) => {
                self.already_ours(key, &bytes, result).await
            }
            other => other,
        }
    }

    /// Writes an object whatever is there (documents that are not part of the chain).
    pub async fn put_overwrite(&self, key: &Key, bytes: Bytes) -> Result<Version, Error> {
        match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), key.path.clone());
                blocking(key, move || folder.overwrite(&path, &bytes)).await
            }
            Inner::Objects(objects) => objects
                .put(&key.path, PutPayload::from_bytes(bytes))
                .await
                .map(|r| Version {
                    e_tag: r.e_tag,
                    version: r.version,
                })
                .map_err(|e| classify(key, "put", e)),
        }
    }

    /// After a refused conditional write: if the object already holds exactly `bytes`, an
    /// earlier attempt of this same write landed, so it succeeded; otherwise keep the refusal.
    async fn already_ours(
        &self,
        key: &Key,
        bytes: &Bytes,
        refusal: Result<Version, Error>,
    ) -> Result<Version, Error> {
        match self.get(key).await {
            Ok((current, version)) if current == *bytes => Ok(version),
            _ => refusal,
        }
    }

    /// The clusters that have a folder in the bucket: one LIST with a delimiter.
    pub async fn list_clusters(&self) -> Result<Vec<ClusterName>, Error> {
        let dir = self.layout.clusters_dir();
        let mut clusters: Vec<ClusterName> = match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), dir.clone());
                let key = Key {
                    relative: dir.to_string(),
                    path: dir.clone(),
                };
                blocking(&key, move || folder.list_dirs(&path))
                    .await?
                    .iter()
                    .filter_map(|name| ClusterName::new(name).ok())
                    .collect()
            }
            Inner::Objects(objects) => {
                let listing = objects.list_with_delimiter(Some(&dir)).await.map_err(|e| {
                    classify(
                        &Key {
                            relative: dir.to_string(),
                            path: dir.clone(),
                        },
                        "list",
                        e,
                    )
                })?;
                listing
                    .common_prefixes
                    .iter()
                    .filter_map(|p| self.layout.cluster_of_dir(p))
                    .collect()
            }
        };
        clusters.sort();
        Ok(clusters)
    }

    /// Opens an object for a streaming read: the size the store reports, known before any byte
    /// is read, and a blocking reader of the stored bytes (to be read on a blocking thread).
    pub async fn open_stream(
        &self,
        key: &Key,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64), Error> {
        match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), key.path.clone());
                let (file, size) = blocking(key, move || folder.open_sized(&path)).await?;
                Ok((
                    Box::new(std::io::BufReader::with_capacity(256 << 10, file)),
                    size,
                ))
            }
            Inner::Objects(objects) => {
                let result = objects
                    .get(&key.path)
                    .await
                    .map_err(|e| classify(key, "get", e))?;
                let size = result.meta.size;
                let stream = result.into_stream().map_err(std::io::Error::other);
                let reader = tokio_util::io::StreamReader::new(stream);
                Ok((Box::new(tokio_util::io::SyncIoBridge::new(reader)), size))
            }
        }
    }

    /// Streams a segment's records, decoding on a blocking thread with bounded memory.
    pub async fn read_segment(
        &self,
        key: &Key,
        limits: &crate::format::DecodeLimits,
    ) -> Result<SegmentStream, Error> {
        let reader: Box<dyn std::io::Read + Send> = match &self.inner {
            Inner::Folder(folder) => {
                let (folder, path) = (folder.clone(), key.path.clone());
                Box::new(std::io::BufReader::with_capacity(
                    256 << 10,
                    blocking(key, move || folder.open_read(&path)).await?,
                ))
            }
            Inner::Objects(objects) => {
                let result = objects
                    .get(&key.path)
                    .await
                    .map_err(|e| classify(key, "get", e))?;
                let stream = result.into_stream().map_err(std::io::Error::other);
                let reader = tokio_util::io::StreamReader::new(stream);
                Box::new(tokio_util::io::SyncIoBridge::new(reader))
            }
        };
        SegmentStream::start(key, reader, limits).await
    }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    key: &Key,
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Task {
            key: key.to_string(),
            reason: e.to_string(),
        })?
}

/// Maps an object_store error to the variant callers act on.
fn classify(key: &Key, operation: &'static str, error: object_store::Error) -> Error {
    let key = key.to_string();
    match error {
        object_store::Error::NotFound { .. } => Error::NotFound { key },
        object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { key },
        object_store::Error::Precondition { .. } => Error::Conflict { key },
        e @ (object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }) => Error::Unsupported {
            key,
            operation,
            source: e,
        },
        e if is_transient(&e) => Error::Transient {
            key,
            operation,
            source: e,
        },
        e => Error::Request {
            key,
            operation,
            source: e,
        },
    }
}

/// Whether an error left after the client's own retries is of a kind that may pass: a
/// connection failure, a timeout, a 5xx or a 429.
fn is_transient(error: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind::*;
            return matches!(http.kind(), Connect | Request | Timeout | Interrupted);
        }
        let text = e.to_string();
        if text.contains("status code: 5") || text.contains("status code: 429") {
            return true;
        }
        source = e.source();
    }
    false
}
