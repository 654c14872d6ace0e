//! The one factory for the project's AWS clients.
//!
//! **What it does.** [`AwsSettings`] (a serde block of the configuration file) describes how to
//! reach AWS: region, optional endpoint override, optional static credentials or profile,
//! path-style S3, retry attempts and timeouts. [`AwsClients::load`] turns it into one shared
//! [`SdkConfig`] and hands out the Kinesis, S3, Glue, Athena, DynamoDB and Redshift Data API
//! clients built from it. Production code and the test bed (`etl-testbed`) both go through
//! here, so tests exercise the clients exactly as production configures them. The SDK crates
//! are re-exported ([`kinesis`], [`s3`], [`glue`], [`athena`], [`dynamodb`], [`redshiftdata`])
//! so the rest of the workspace uses one version of each without naming them again.
//!
//! **What it does not do.** It makes no AWS call itself, holds no business logic, and adds no
//! retry loop of its own: callers get plain SDK clients.
//!
//! # Network calls when loading
//!
//! With `endpoint_url`, `credentials` and `region` all set (what [`AwsSettings::local`]
//! builds), loading resolves nothing remotely: no instance-metadata (IMDS) lookup, no STS call,
//! no SSO; the clients contact only `endpoint_url`. Without static credentials the SDK's default
//! chain runs lazily on the first call (environment, profile, web identity, ECS, then IMDS).
//!
//! # One credential chain for every client
//!
//! The SDK clients and the S3 lake store (`object_store`, which has providers of its own) sign
//! with the same credentials: [`AwsClients::object_store_credentials`] (or
//! [`ChainCredentials::lazy`] where no loaded configuration is at hand) hands the lake store the
//! SDK's chain, cached until [`REFRESH_MARGIN`] before expiry. The web identity provider calls
//! STS at `AWS_ENDPOINT_URL_STS` (or `AWS_ENDPOINT_URL`) when set, not at `endpoint_url`.
//!
//! # Retries: the project's one retry layer for AWS calls
//!
//! Every client runs the SDK's **standard retry mode** with `max_attempts` attempts per call
//! (first try included; [`DEFAULT_MAX_ATTEMPTS`]; `1` disables retries), exponential backoff
//! with full jitter (1 s base, 20 s cap) and the SDK's client-side retry quota (a token bucket
//! that stops retrying when most recent attempts failed). Code above this crate must not wrap
//! AWS calls in retry loops of its own, or attempts multiply.
//!
//! One exception, written here so it stays the only one: a long-running polling loop may *pause*
//! after a call the SDK gave up on and then go on with its next call, because stopping is worse.
//! The Kinesis shard reader (`etl_kinesis::reader`) does this for `GetRecords` and
//! `GetShardIterator`: a pause of its shard with exponential backoff and full jitter (1 s to
//! 30 s), unlimited for throttling, at most 10 in a row for other retryable errors. The SDK's
//! attempts inside each call are unchanged.
//!
//! Retryable, as classified by the SDK:
//! - transport failures: connection refused or reset, connect timeout
//!   (`connect_timeout_ms`), attempt timeout (`attempt_timeout_ms`), I/O errors mid-response;
//! - HTTP 500, 502, 503, 504;
//! - throttling error codes: `Throttling`, `ThrottlingException`, `ThrottledException`,
//!   `RequestThrottledException`, `TooManyRequestsException`,
//!   `ProvisionedThroughputExceededException` (Kinesis, DynamoDB), `TransactionInProgressException`,
//!   `RequestLimitExceeded`, `BandwidthLimitExceeded`, `LimitExceededException`,
//!   `RequestThrottled`, `SlowDown` (S3), `PriorRequestNotComplete`, `EC2ThrottledException`;
//! - transient error codes: `RequestTimeout`, `RequestTimeoutException`, and errors a service
//!   model marks retryable.
//!
//! Everything else (4xx validation, access denied, `ResourceNotFoundException`, S3's `412
//! PreconditionFailed`, DynamoDB's `ConditionalCheckFailedException`, …) fails at once and is
//! the caller's to handle. Streaming uploads whose body cannot be replayed are not retried.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), etl_aws::AwsConfigError> {
//! let settings = etl_aws::AwsSettings::local("http://127.0.0.1:5000", "us-east-1");
//! let clients = etl_aws::AwsClients::load(&settings).await?;
//! let _buckets = clients.s3().list_buckets().send().await;
//! # Ok(()) }
//! ```

pub mod backoff;
mod object_store_credentials;
mod settings;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;

pub use aws_config::SdkConfig;
pub use aws_sdk_athena as athena;
pub use aws_sdk_dynamodb as dynamodb;
pub use aws_sdk_glue as glue;
pub use aws_sdk_kinesis as kinesis;
pub use aws_sdk_redshiftdata as redshiftdata;
pub use aws_sdk_s3 as s3;
pub use aws_smithy_types::error::display::DisplayErrorContext;
pub use object_store_credentials::{ChainCredentials, REFRESH_MARGIN};
pub use settings::{
    AwsSettings, StaticCredentials, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_MAX_ATTEMPTS,
    DEFAULT_REGION,
};

/// Why AWS clients could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum AwsConfigError {
    /// A field of [`AwsSettings`] holds a value that cannot work.
    #[error("invalid AWS setting `{field}`: {reason} (fix the `aws` block of the configuration)")]
    InvalidSetting {
        /// Name of the offending field.
        field: &'static str,
        /// What is wrong and what to write instead.
        reason: String,
    },
}

/// Formats an error with its whole source chain (`outer: inner: innermost`). An SDK error's own
/// `Display` says only "service error" or "dispatch failure"; the chain adds the service's error
/// code and message, or the I/O cause. Use it when turning an SDK error into a project error
/// ([`DisplayErrorContext`] also appends the `Debug` form, raw response included).
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Builds the shared SDK configuration from `settings` (validated first).
///
/// Explicit values win over the environment and profile files; what is left unset comes from
/// the SDK's default providers, credentials resolving lazily on first use.
pub async fn load_sdk_config(settings: &AwsSettings) -> Result<SdkConfig, AwsConfigError> {
    settings.validate()?;

    let mut timeouts = TimeoutConfig::builder()
        .connect_timeout(Duration::from_millis(settings.connect_timeout_ms));
    if let Some(ms) = settings.attempt_timeout_ms {
        timeouts = timeouts.operation_attempt_timeout(Duration::from_millis(ms));
    }

    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client())
        .region(Region::new(settings.region.clone()))
        .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
        .timeout_config(timeouts.build());
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile.clone());
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if let Some(creds) = &settings.credentials {
        loader = loader.credentials_provider(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
            creds.session_token.clone(),
            None,
            "etl-aws-static",
        ));
    }
    let config = loader.load().await;
    tracing::debug!(
        region = %settings.region,
        endpoint_url = settings.endpoint_url.as_deref().unwrap_or("<aws>"),
        static_credentials = settings.credentials.is_some(),
        max_attempts = settings.max_attempts,
        "AWS SDK configuration loaded"
    );
    Ok(config)
}

/// The one HTTPS client of every AWS SDK client (and of the credential providers: STS, SSO,
/// IMDS, ECS): hyper 1 with rustls on the `ring` crypto provider, the TLS stack object_store
/// already brings. Certificates come from the platform's store (`rustls-native-certs`), as with
/// the SDK's default client; timeouts come from the SDK configuration per request.
fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Factory of the project's AWS clients, all sharing one [`SdkConfig`] (and so one HTTP
/// connection pool and one credentials cache).
///
/// Clients are cheap to build and to clone; build them where needed. In tests, build them inside
/// each test: the HTTP pool belongs to the tokio runtime that first used it.
#[derive(Clone, Debug)]
pub struct AwsClients {
    config: SdkConfig,
    force_path_style: bool,
}

impl AwsClients {
    /// Validates `settings` and loads the shared configuration (see [`load_sdk_config`]).
    pub async fn load(settings: &AwsSettings) -> Result<Self, AwsConfigError> {
        let config = load_sdk_config(settings).await?;
        Ok(Self::from_sdk_config(config, settings.force_path_style))
    }

    /// Wraps an already loaded configuration; `force_path_style` applies to S3 only.
    pub fn from_sdk_config(config: SdkConfig, force_path_style: bool) -> Self {
        Self {
            config,
            force_path_style,
        }
    }

    /// The shared configuration, for a client this crate has no constructor for.
    pub fn sdk_config(&self) -> &SdkConfig {
        &self.config
    }

    /// Kinesis Data Streams client.
    pub fn kinesis(&self) -> kinesis::Client {
        kinesis::Client::new(&self.config)
    }

    /// S3 client, path-style addressing when the settings asked for it.
    pub fn s3(&self) -> s3::Client {
        let conf = s3::config::Builder::from(&self.config)
            .force_path_style(self.force_path_style)
            .build();
        s3::Client::from_conf(conf)
    }

    /// Glue Data Catalog client.
    pub fn glue(&self) -> glue::Client {
        glue::Client::new(&self.config)
    }

    /// Athena client.
    pub fn athena(&self) -> athena::Client {
        athena::Client::new(&self.config)
    }

    /// DynamoDB client.
    pub fn dynamodb(&self) -> dynamodb::Client {
        dynamodb::Client::new(&self.config)
    }

    /// Redshift Data API client.
    pub fn redshift_data(&self) -> redshiftdata::Client {
        redshiftdata::Client::new(&self.config)
    }

    /// Whether S3 requests use path-style addressing.
    pub fn force_path_style(&self) -> bool {
        self.force_path_style
    }

    /// The credentials of these clients for `object_store`'s S3 store (the lake), cached until
    /// shortly before they expire. `None` only for a configuration loaded without any provider.
    pub fn object_store_credentials(&self) -> Option<std::sync::Arc<ChainCredentials>> {
        self.config
            .credentials_provider()
            .map(|p| std::sync::Arc::new(ChainCredentials::new(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_defaults_apply_and_unknown_fields_are_rejected() {
        let s: AwsSettings = toml::from_str("region = \"eu-west-1\"").unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(s.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS);
        assert!(!s.force_path_style && s.endpoint_url.is_none() && s.credentials.is_none());
        let empty: AwsSettings = toml::from_str("").unwrap();
        assert_eq!(empty, AwsSettings::default());

        let err = toml::from_str::<AwsSettings>("regoin = \"eu-west-1\"").unwrap_err();
        assert!(err.to_string().contains("regoin"), "{err}");
        let err = toml::from_str::<AwsSettings>(
            "credentials = { access_key_id = \"a\", secret_access_key = \"b\", extra = 1 }",
        )
        .unwrap_err();
        assert!(err.to_string().contains("extra"), "{err}");
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = AwsSettings::local("http://127.0.0.1:1", "us-east-1");
        let mut s = s;
        if let Some(c) = s.credentials.as_mut() {
            c.secret_access_key = "SUPERSECRET".into();
            c.session_token = Some("TOKENSECRET".into());
        }
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("SUPERSECRET") && !shown.contains("TOKENSECRET"),
            "{shown}"
        );
    }

    #[test]
    fn validation_names_the_field() {
        type Break = fn(&mut AwsSettings);
        let cases: [(&str, Break); 5] = [
            ("region", |s| s.region = " ".into()),
            ("endpoint_url", |s| {
                s.endpoint_url = Some("127.0.0.1:80".into())
            }),
            ("max_attempts", |s| s.max_attempts = 0),
            ("connect_timeout_ms", |s| s.connect_timeout_ms = 0),
            ("attempt_timeout_ms", |s| s.attempt_timeout_ms = Some(0)),
        ];
        for (field, breakit) in cases {
            let mut s = AwsSettings::local("http://127.0.0.1:1", "us-east-1");
            assert!(s.validate().is_ok());
            breakit(&mut s);
            match s.validate() {
                Err(AwsConfigError::InvalidSetting { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected InvalidSetting, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn local_settings_reach_the_clients() {
        let mut settings = AwsSettings::local("http://127.0.0.1:9", "eu-north-1");
        settings.max_attempts = 1;
        let clients = AwsClients::load(&settings).await.unwrap();
        let conf = clients.sdk_config();
        assert_eq!(conf.region().map(|r| r.as_ref()), Some("eu-north-1"));
        assert_eq!(conf.endpoint_url(), Some("http://127.0.0.1:9"));
        assert_eq!(conf.retry_config().map(|r| r.max_attempts()), Some(1));
        // Path-style S3 is proven by the test bed's S3 smoke test (a virtual-host request to
        // `bucket.127.0.0.1` could not resolve).
        // Nothing listens on port 9 (discard): the call must fail fast with a connect error,
        // proving the endpoint override is used and no credential lookup blocks first.
        let err = clients.kinesis().list_streams().send().await.unwrap_err();
        let text = describe_error(&err);
        assert!(
            text.to_lowercase().contains("connect") || text.contains("dispatch"),
            "{text}"
        );
    }
}
