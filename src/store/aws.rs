//! AWS credentials for the S3 backend from aws-config's default chain: environment, shared
//! profiles (including SSO and credential_process), web identity (EKS IRSA), ECS and EC2
//! instance roles. object_store alone covers only some of these.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use tokio::sync::Mutex;

/// What aws-config found: a credential provider, the region and an endpoint override.
pub struct AwsEnvironment {
    pub credentials: Option<SharedCredentialsProvider>,
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3` or a profile's `endpoint_url`.
    pub endpoint_url: Option<String>,
}

/// Loads the AWS environment the way the AWS CLI and SDKs do.
pub async fn load_environment() -> AwsEnvironment {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    AwsEnvironment {
        credentials: config.credentials_provider(),
        region: config.region().map(|r| r.to_string()),
        endpoint_url: config.endpoint_url().map(str::to_string),
    }
}

/// Adapts an aws-config credential provider to object_store, caching credentials until shortly
/// before they expire so that a request does not mean a call to STS or the instance metadata.
#[derive(Debug)]
pub struct AwsConfigCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<(Arc<AwsCredential>, Option<SystemTime>)>>,
}

/// Credentials are renewed this long before they expire.
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

impl AwsConfigCredentials {
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: Mutex::new(None),
        }
    }
}

#[async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref() {
            let fresh = expiry.is_none_or(|at| {
                at.duration_since(SystemTime::now())
                    .is_ok_and(|left| left > RENEW_BEFORE_EXPIRY)
            });
            if fresh {
                return Ok(Arc::clone(credential));
            }
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: format!("no AWS credentials from the default chain (environment, profile, SSO, web identity, container or instance role): {e}").into(),
            })?;
        let credential = Arc::new(AwsCredential {
            key_id: credentials.access_key_id().to_string(),
            secret_key: credentials.secret_access_key().to_string(),
            token: credentials.session_token().map(str::to_string),
        });
        *cached = Some((Arc::clone(&credential), credentials.expiry()));
        Ok(credential)
    }
}
