//! The gateway: a read-only Kubernetes API for each indexed cluster, served from the indexer's
//! tables, so that the live calls Clouddriver makes for an account (manifests, events,
//! discovery) succeed for a cluster it cannot reach. Each cluster is under
//! `/clusters/<account>`; every object is as the cluster had it at its last applied diff.

pub mod api;
pub mod printers;
pub mod query;
pub mod server;
pub mod source;
pub mod tokens;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The response header that says how old an answer is: seconds since the cluster's agent last
/// changed its head.
pub const DATA_AGE_HEADER: &str = "x-outpost-data-age-seconds";

/// What went wrong starting or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the gateway on {address} failed: {source}")]
    Serve {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {what} {path}: {source}")]
    ReadTls {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} {path}: {reason}")]
    Tls {
        what: &'static str,
        path: String,
        reason: String,
    },
    #[error(transparent)]
    Database(#[from] crate::indexer::db::Error),
}

/// The TLS configuration of a certificate chain and its key (PEM files).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |what: &'static str, path: &Path| {
        std::fs::read(path).map_err(|source| Error::ReadTls {
            what,
            path: path.display().to_string(),
            source,
        })
    };
    let invalid = |what: &'static str, path: &Path, reason: String| Error::Tls {
        what,
        path: path.display().to_string(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read("certificate", cert)?)
            .collect::<Result<_, _>>()
            .map_err(|e| invalid("certificate", cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(invalid(
            "certificate",
            cert,
            "no PEM certificate in it".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&read("key", key)?)
        .map_err(|e| invalid("key", key, e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid("certificate", cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| invalid("key", key, format!("does not go with the certificate: {e}")))?;
    Ok(Arc::new(config))
}
