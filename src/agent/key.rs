//! The cluster's HMAC key for Secret values ([`super::redact`]): needed only while Secrets are
//! watched, and then read from the key file the installer provides, or else kept in a Secret of
//! the agent's namespace that the agent creates when its role allows it.
//!
//! Without a key file the agent needs `get` on that Secret, and `create` on Secrets of its
//! namespace until the Secret exists; every refusal names the grant or the flag that is missing.

use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use super::api_error::ApiError;
use super::config::AgentConfig;
use super::redact::{MIN_KEY_BYTES, SECRET_KIND};

/// The Secret that holds the cluster's redaction key when no key file is given.
pub const KEY_SECRET: &str = "outpost-redaction-key";
/// The member of [`KEY_SECRET`]'s `data` that holds the key.
pub const KEY_SECRET_FIELD: &str = "key";
/// The namespace the agent keeps its key in when `POD_NAMESPACE` and the service account do not
/// say which it runs in.
pub const FALLBACK_NAMESPACE: &str = "default";
/// Where a pod's service account names the pod's namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
/// The key-file setting, as a refusal names it.
const KEY_FILE_SETTING: &str =
    "--redaction-key-file (OUTPOST_REDACTION_KEY_FILE, or redaction.keyFile in the config file)";

/// Why there is no key.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not read the redaction key file {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the redaction key file {} holds {len} bytes; at least {MIN_KEY_BYTES} are needed",
        .path.display()
    )]
    ShortFile { path: PathBuf, len: usize },
    #[error(
        "Secrets are watched, so their values need an HMAC key, but the agent may not read Secret {namespace}/{KEY_SECRET} that keeps it: grant verb \"get\" on resource \"secrets\" (name {KEY_SECRET}) in namespace \"{namespace}\", or give a key file of at least {MIN_KEY_BYTES} bytes with {KEY_FILE_SETTING}; the API server said: {source}"
    )]
    ReadForbidden {
        namespace: String,
        #[source]
        source: ApiError,
    },
    #[error("could not read Secret {namespace}/{KEY_SECRET}: {source}")]
    ReadSecret {
        namespace: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "Secret {namespace}/{KEY_SECRET} has no data.{KEY_SECRET_FIELD} of at least {MIN_KEY_BYTES} bytes"
    )]
    NoKeyInSecret { namespace: String },
    #[error(
        "Secrets are watched, so their values need an HMAC key, but there is no key file and the agent may not create Secret {namespace}/{KEY_SECRET} to keep one: give a key file of at least {MIN_KEY_BYTES} bytes (e.g. mounted from a Secret the installer created) with {KEY_FILE_SETTING}, or grant verb \"create\" on resource \"secrets\" in namespace \"{namespace}\"; the API server said: {source}"
    )]
    CreateForbidden {
        namespace: String,
        #[source]
        source: ApiError,
    },
    #[error("could not create Secret {namespace}/{KEY_SECRET}: {source}")]
    CreateSecret {
        namespace: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "Secret {namespace}/{KEY_SECRET} was neither found nor created after {tries} tries (created and deleted meanwhile?)"
    )]
    Vanishing { namespace: String, tries: usize },
}

/// Reads a key file (at least [`MIN_KEY_BYTES`]).
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, Error> {
    let key = std::fs::read(path).map_err(|source| Error::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    if key.len() < MIN_KEY_BYTES {
        return Err(Error::ShortFile {
            path: path.to_path_buf(),
            len: key.len(),
        });
    }
    Ok(key)
}

/// The namespace the agent runs in: `POD_NAMESPACE`, else its service account's, else
/// [`FALLBACK_NAMESPACE`].
pub fn agent_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE).ok())
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| FALLBACK_NAMESPACE.to_string())
}

/// The key kept in [`KEY_SECRET`] of `namespace`, creating the Secret with a random key when it
/// does not exist (another replica may create it first: then its key is used).
pub async fn from_secret(client: &kube::Client, namespace: &str) -> Result<Vec<u8>, Error> {
    const TRIES: usize = 3;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..TRIES {
        match secrets.get_opt(KEY_SECRET).await.map_err(ApiError) {
            Ok(Some(secret)) => {
                let key = secret
                    .data
                    .and_then(|mut data| data.remove(KEY_SECRET_FIELD))
                    .map(|bytes| bytes.0)
                    .unwrap_or_default();
                if key.len() < MIN_KEY_BYTES {
                    return Err(Error::NoKeyInSecret {
                        namespace: namespace.to_string(),
                    });
                }
                return Ok(key);
            }
            Ok(None) => {}
            Err(source) if source.code() == Some(403) => {
                return Err(Error::ReadForbidden {
                    namespace: namespace.to_string(),
                    source,
                });
            }
            Err(source) => {
                return Err(Error::ReadSecret {
                    namespace: namespace.to_string(),
                    source,
                });
            }
        }
        let key: Vec<u8> = (0..MIN_KEY_BYTES).map(|_| rand::random::<u8>()).collect();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(KEY_SECRET.into()),
                ..ObjectMeta::default()
            },
            data: Some([(KEY_SECRET_FIELD.to_string(), ByteString(key))].into()),
            ..Secret::default()
        };
        match secrets
            .create(&PostParams::default(), &secret)
            .await
            .map_err(ApiError)
        {
            // Read back what was stored: another replica's key if it was first (409).
            Ok(_) => continue,
            Err(source) if source.code() == Some(409) => continue,
            Err(source) if source.code() == Some(403) => {
                return Err(Error::CreateForbidden {
                    namespace: namespace.to_string(),
                    source,
                });
            }
            Err(source) => {
                return Err(Error::CreateSecret {
                    namespace: namespace.to_string(),
                    source,
                });
            }
        }
    }
    Err(Error::Vanishing {
        namespace: namespace.to_string(),
        tries: TRIES,
    })
}

/// The cluster's HMAC key, when there is one to have: `known` (read before: the key does not
/// change while the agent runs), else the key file's, else — only while Secrets are watched —
/// the one kept in the cluster. With no Secret watched and no key file the agent needs none, nor
/// any right on Secrets.
pub async fn for_config(
    config: &AgentConfig,
    client: &kube::Client,
    known: Option<Vec<u8>>,
) -> Result<Option<Vec<u8>>, Error> {
    if known.is_some() {
        return Ok(known);
    }
    if let Some(path) = &config.redaction.key_file {
        return read_key_file(path).map(Some);
    }
    if !config
        .effective_kinds()
        .iter()
        .any(|kind| kind == SECRET_KIND)
    {
        return Ok(None);
    }
    from_secret(client, &agent_namespace()).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_missing_key_file_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, [1u8; 31]).unwrap();
        let error = read_key_file(&short).unwrap_err().to_string();
        assert!(
            error.contains("short.key") && error.contains("31 bytes"),
            "{error}"
        );
        let missing = read_key_file(&dir.path().join("none.key"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.key"), "{missing}");
        let good = dir.path().join("good.key");
        std::fs::write(&good, [2u8; 32]).unwrap();
        assert_eq!(read_key_file(&good).unwrap(), vec![2u8; 32]);
    }

    #[test]
    fn a_refused_create_names_the_grant_and_the_flag_once() {
        let status = kube::core::Status::failure(
            "secrets is forbidden: User \"a\" cannot create resource \"secrets\" in API group \"\" in the namespace \"ops\"",
            "Forbidden",
        )
        .with_code(403);
        let error = Error::CreateForbidden {
            namespace: "ops".into(),
            source: ApiError(kube::Error::Api(Box::new(status))),
        };
        let chain = crate::error_chain(&error);
        for needle in [
            "grant verb \"create\" on resource \"secrets\" in namespace \"ops\"",
            "--redaction-key-file",
            "the API server said: secrets is forbidden",
            "(Forbidden, HTTP 403)",
        ] {
            assert!(chain.contains(needle), "no {needle} in {chain}");
        }
        assert_eq!(chain.matches("secrets is forbidden").count(), 1, "{chain}");
    }
}
