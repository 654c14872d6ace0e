//! [`ChainCredentials`]: the SDK's credential chain as an `object_store` credential provider.
//!
//! The S3 lake store (`object_store`'s `AmazonS3`) has an HTTP stack and credential providers of
//! its own, which do not read profiles, and which go to the instance metadata service when the
//! environment holds no keys. Handing it this provider makes the lake sign with exactly what the
//! SDK clients use: the `[aws] credentials` override when set, else the SDK's default chain
//! (environment, shared profile, web identity token file, ECS/EKS container credentials,
//! instance metadata).
//!
//! `object_store` asks for a credential before every signed request and caches nothing for a
//! custom provider, and the chain itself caches nothing either (the SDK clients' identity cache
//! sits outside it). So this provider caches: it keeps a credential until [`REFRESH_MARGIN`]
//! before its expiry, then resolves again; a credential without expiry (static keys) is kept.
//! If a refresh fails while the cached credential is still valid, the cached one is used and the
//! failure logged, so a short STS or metadata hiccup does not fail lake writes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::aws::AwsCredential;
use object_store::CredentialProvider;
use tokio::sync::{Mutex, OnceCell};

use crate::{describe_error, load_sdk_config, AwsSettings};

/// How long before its expiry a credential is resolved again (what `object_store`'s own
/// providers and the SDK's identity cache use).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Where the chain comes from: an already loaded configuration, or settings to load lazily.
enum Source {
    Provider(SharedCredentialsProvider),
    Settings {
        settings: Box<AwsSettings>,
        loaded: OnceCell<SharedCredentialsProvider>,
    },
}

/// A credential and when it stops being valid (`None`: never).
struct Cached {
    credential: Arc<AwsCredential>,
    expiry: Option<SystemTime>,
}

/// The SDK's credential chain as an `object_store` [`CredentialProvider`] (see the module doc).
pub struct ChainCredentials {
    source: Source,
    cached: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for ChainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::Provider(p) => format!("{p:?}"),
            Source::Settings { settings, .. } => format!("lazy {settings:?}"),
        };
        f.debug_struct("ChainCredentials")
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

impl ChainCredentials {
    /// Uses `provider` (e.g. `SdkConfig::credentials_provider()` of a loaded configuration).
    pub fn new(provider: SharedCredentialsProvider) -> Self {
        Self {
            source: Source::Provider(provider),
            cached: Mutex::new(None),
        }
    }

    /// Loads the SDK configuration of `settings` on the first request and uses its chain; makes
    /// no call now (so it can be built where no async context is at hand).
    pub fn lazy(settings: AwsSettings) -> Self {
        Self {
            source: Source::Settings {
                settings: Box::new(settings),
                loaded: OnceCell::new(),
            },
            cached: Mutex::new(None),
        }
    }

    async fn provider(&self) -> object_store::Result<&SharedCredentialsProvider> {
        match &self.source {
            Source::Provider(p) => Ok(p),
            Source::Settings { settings, loaded } => {
                loaded
                    .get_or_try_init(|| async {
                        let config = load_sdk_config(settings).await.map_err(generic)?;
                        config.credentials_provider().ok_or_else(|| {
                            generic(NoProvider(
                                "the AWS SDK configuration has no credentials provider",
                            ))
                        })
                    })
                    .await
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoProvider(&'static str);

fn generic(err: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "S3 credentials",
        source: Box::new(err),
    }
}

fn fresh(cached: &Cached, now: SystemTime) -> bool {
    cached
        .expiry
        .is_none_or(|expiry| now + REFRESH_MARGIN < expiry)
}

#[async_trait]
impl CredentialProvider for ChainCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        // One resolution at a time: concurrent requests wait for it instead of each calling STS.
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref().filter(|c| fresh(c, now)) {
            return Ok(Arc::clone(&c.credential));
        }
        let resolved = match self.provider().await {
            Ok(provider) => provider.provide_credentials().await.map_err(generic),
            Err(e) => Err(e),
        };
        match resolved {
            Ok(creds) => {
                let credential = Arc::new(AwsCredential {
                    key_id: creds.access_key_id().to_owned(),
                    secret_key: creds.secret_access_key().to_owned(),
                    token: creds.session_token().map(str::to_owned),
                });
                tracing::debug!(
                    expiry = ?creds.expiry(),
                    "resolved AWS credentials for the S3 lake store"
                );
                *cached = Some(Cached {
                    credential: Arc::clone(&credential),
                    expiry: creds.expiry(),
                });
                Ok(credential)
            }
            Err(e) => match cached
                .as_ref()
                .filter(|c| c.expiry.is_some_and(|x| now < x))
            {
                Some(still_valid) => {
                    tracing::warn!(
                        error = %describe_error(&e),
                        "refreshing AWS credentials failed; using the current ones until they expire"
                    );
                    Ok(Arc::clone(&still_valid.credential))
                }
                None => Err(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::{error::CredentialsError, future};
    use aws_credential_types::Credentials;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Hands out `key-<n>` valid for `lifetime`, or fails once `fail_after` calls were made.
    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Option<Duration>,
        fail_after: usize,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if n > self.fail_after {
                return future::ProvideCredentials::ready(Err(CredentialsError::provider_error(
                    "sts is down",
                )));
            }
            let expiry = self.lifetime.map(|l| SystemTime::now() + l);
            future::ProvideCredentials::ready(Ok(Credentials::new(
                format!("key-{n}"),
                "secret",
                Some("token".into()),
                expiry,
                "test",
            )))
        }
    }

    fn bridge(
        lifetime: Option<Duration>,
        fail_after: usize,
    ) -> (ChainCredentials, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let provider = SharedCredentialsProvider::new(Counting {
            calls: Arc::clone(&calls),
            lifetime,
            fail_after,
        });
        (ChainCredentials::new(provider), calls)
    }

    #[tokio::test]
    async fn long_lived_credentials_are_resolved_once() {
        let (b, calls) = bridge(Some(Duration::from_secs(3600)), usize::MAX);
        for _ in 0..5 {
            let c = b.get_credential().await.unwrap();
            assert_eq!(c.key_id, "key-1");
            assert_eq!(c.token.as_deref(), Some("token"));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let (b, calls) = bridge(None, usize::MAX);
        b.get_credential().await.unwrap();
        b.get_credential().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no expiry: kept");
    }

    #[tokio::test]
    async fn credentials_inside_the_refresh_margin_are_resolved_again() {
        // Valid for 4 more minutes: inside the 5-minute margin, so every request refreshes.
        let (b, calls) = bridge(Some(Duration::from_secs(240)), usize::MAX);
        assert_eq!(b.get_credential().await.unwrap().key_id, "key-1");
        assert_eq!(b.get_credential().await.unwrap().key_id, "key-2");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_a_still_valid_credential_and_fails_without_one() {
        let (b, calls) = bridge(Some(Duration::from_secs(240)), 1);
        assert_eq!(b.get_credential().await.unwrap().key_id, "key-1");
        // The refresh fails, but key-1 is valid for 4 more minutes.
        assert_eq!(b.get_credential().await.unwrap().key_id, "key-1");
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let (b, _) = bridge(Some(Duration::from_secs(240)), 0);
        let err = b.get_credential().await.unwrap_err();
        assert!(describe_error(&err).contains("sts is down"), "{err}");
    }

    #[tokio::test]
    async fn configured_static_credentials_come_through_the_lazy_chain() {
        let mut settings = AwsSettings::local("http://127.0.0.1:9", "us-east-1");
        if let Some(c) = settings.credentials.as_mut() {
            c.access_key_id = "AKIACONFIGURED".into();
            c.session_token = Some("configured-token".into());
        }
        let b = ChainCredentials::lazy(settings);
        let c = b.get_credential().await.unwrap();
        assert_eq!(c.key_id, "AKIACONFIGURED");
        assert_eq!(c.token.as_deref(), Some("configured-token"));
    }
}
