//! [`AwsSettings`]: the one configuration block for every AWS client the project builds.

use serde::{Deserialize, Serialize};

use crate::AwsConfigError;

/// Region used when the configuration names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Attempts per AWS call (first try included) when the configuration names none.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Time allowed to open a TCP/TLS connection when the configuration names none.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 3_100;

fn default_region() -> String {
    DEFAULT_REGION.to_owned()
}

fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}

fn default_connect_timeout_ms() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_MS
}

/// How to reach AWS: region, optional endpoint override, credentials and retry policy.
///
/// Every AWS client of the project is built from one of these through
/// [`crate::AwsClients::load`]. In TOML it is a table such as:
///
/// ```toml
/// region = "eu-west-1"
/// endpoint_url = "http://127.0.0.1:4566"   # tests and local stand-ins only
/// force_path_style = true
/// credentials = { access_key_id = "test", secret_access_key = "test" }
/// max_attempts = 5
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// AWS region of every client, e.g. `eu-west-1`. Default: [`DEFAULT_REGION`].
    #[serde(default = "default_region")]
    pub region: String,

    /// Send every request to this URL instead of the regional AWS endpoint
    /// (e.g. `http://127.0.0.1:4566` for a local stand-in). Default: none, i.e. real AWS.
    #[serde(default)]
    pub endpoint_url: Option<String>,

    /// Fixed credentials. Default: none, i.e. the SDK's default chain
    /// (environment, profile, web identity, ECS/EC2 instance metadata).
    #[serde(default)]
    pub credentials: Option<StaticCredentials>,

    /// Address S3 buckets as `https://host/bucket/key` instead of `https://bucket.host/key`.
    /// Needed by local S3 stand-ins; leave `false` for AWS. Default: `false`.
    #[serde(default)]
    pub force_path_style: bool,

    /// Named profile of the shared AWS config files (`~/.aws/config`, `~/.aws/credentials`).
    /// Default: none, i.e. `AWS_PROFILE` or `default`.
    #[serde(default)]
    pub profile: Option<String>,

    /// Attempts per AWS call, first try included, in the SDK's standard retry mode;
    /// `1` disables retries. Default: [`DEFAULT_MAX_ATTEMPTS`].
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,

    /// Milliseconds allowed to open a connection before the attempt fails (and is retried).
    /// Default: [`DEFAULT_CONNECT_TIMEOUT_MS`].
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,

    /// Milliseconds allowed for one attempt of one call, response body included.
    /// Default: none (no limit; large S3 uploads may take long).
    #[serde(default)]
    pub attempt_timeout_ms: Option<u64>,
}

impl Default for AwsSettings {
    fn default() -> Self {
        Self {
            region: default_region(),
            endpoint_url: None,
            credentials: None,
            force_path_style: false,
            profile: None,
            max_attempts: default_max_attempts(),
            connect_timeout_ms: default_connect_timeout_ms(),
            attempt_timeout_ms: None,
        }
    }
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .field("credentials", &self.credentials)
            .field("force_path_style", &self.force_path_style)
            .field("profile", &self.profile)
            .field("max_attempts", &self.max_attempts)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("attempt_timeout_ms", &self.attempt_timeout_ms)
            .finish()
    }
}

impl AwsSettings {
    /// Settings for a local stand-in: `endpoint_url`, static credentials, explicit region,
    /// path-style S3. Loading these reads no credential chain and contacts nothing but
    /// `endpoint_url`.
    pub fn local(endpoint_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            endpoint_url: Some(endpoint_url.into()),
            credentials: Some(StaticCredentials {
                access_key_id: "testing".to_owned(),
                secret_access_key: "testing".to_owned(),
                session_token: None,
            }),
            force_path_style: true,
            ..Self::default()
        }
    }

    /// Checks the values the SDK would otherwise reject late or silently misuse.
    pub fn validate(&self) -> Result<(), AwsConfigError> {
        let invalid =
            |field: &'static str, reason: String| AwsConfigError::InvalidSetting { field, reason };
        if self.region.trim().is_empty() {
            return Err(invalid(
                "region",
                "is empty; name a region such as `eu-west-1`".into(),
            ));
        }
        if let Some(url) = &self.endpoint_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() <= "https://".len()
            {
                return Err(invalid(
                    "endpoint_url",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if let Some(creds) = &self.credentials {
            if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() {
                return Err(invalid(
                    "credentials",
                    "access_key_id and secret_access_key must both be non-empty; \
                     omit `credentials` to use the default chain"
                        .into(),
                ));
            }
        }
        if self.max_attempts == 0 {
            return Err(invalid(
                "max_attempts",
                "must be at least 1 (1 = no retries)".into(),
            ));
        }
        if self.connect_timeout_ms == 0 {
            return Err(invalid(
                "connect_timeout_ms",
                "must be greater than 0".into(),
            ));
        }
        if self.attempt_timeout_ms == Some(0) {
            return Err(invalid(
                "attempt_timeout_ms",
                "must be greater than 0; omit it for no limit".into(),
            ));
        }
        Ok(())
    }
}

/// Fixed AWS credentials (tests, local stand-ins, or keys handed over by a secret store).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    /// Access key id, e.g. `AKIA...`.
    pub access_key_id: String,
    /// Secret access key. Never logged: `Debug` prints it redacted.
    pub secret_access_key: String,
    /// Session token of temporary credentials. Default: none.
    #[serde(default)]
    pub session_token: Option<String>,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}
