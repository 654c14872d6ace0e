//! Lakes on S3: `s3://bucket/prefix` through `object_store`'s Amazon S3 store.
//!
//! Why `object_store` and not `aws-sdk-s3`: the lake, the file catalog and DataFusion's Parquet
//! reader all speak `ObjectStore`, so an S3 lake needs nothing but a different store; a store
//! written over `aws-sdk-s3` would re-implement listing, ranged reads and multipart uploads.
//! The price is a second HTTP stack, so the S3 store's own retry layer is THE retry layer for
//! lake objects (configured from the same `max_attempts` as the SDK clients; no code above
//! loops), and its credentials come from the AWS SDK's chain through [`S3CredentialProvider`]
//! (the `[aws] credentials` override, environment, profile, web identity, ECS, instance
//! metadata; refreshed before expiry), the same as every SDK client of the binary.

use crate::LakeError;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredential};
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, CredentialProvider, ObjectStore, RetryConfig};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// Server-side encryption of every object the lake writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum S3Encryption {
    /// The bucket's default encryption (S3 encrypts every object with SSE-S3 at least).
    #[default]
    BucketDefault,
    /// SSE-S3 (`x-amz-server-side-encryption: AES256`) requested on every write.
    S3Managed,
    /// SSE-KMS with this key id or ARN (`aws:kms`), with an S3 bucket key.
    Kms {
        /// KMS key id, alias or ARN.
        key_id: String,
    },
}

/// Where the S3 store gets its credentials: `etl-aws`'s bridge to the AWS SDK's chain
/// (`etl_aws::ChainCredentials`, built by `etl_glue::s3_options`), so that the lake signs with
/// exactly what the SDK clients use.
pub type S3CredentialProvider = Arc<dyn CredentialProvider<Credential = AwsCredential>>;

/// How to reach the lake's bucket. Built from the project's AWS settings by `etl-glue`
/// (`etl_glue::s3_options`), so tests and production configure it the same way.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// AWS region of the bucket.
    pub region: String,
    /// Endpoint override (a local stand-in); `http://` is allowed only with an override.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`host/bucket/key`), needed by local stand-ins.
    pub force_path_style: bool,
    /// Credentials of every request. `None`: `object_store`'s own chain from the environment
    /// (keys, web identity, ECS, then the instance metadata service; no profiles), for
    /// [`crate::LakeStore::open`] without AWS settings; the CLI always passes the SDK's chain.
    pub credentials: Option<S3CredentialProvider>,
    /// Attempts per request, first try included (exponential backoff, 1 s to 20 s).
    pub max_attempts: u32,
    /// Server-side encryption.
    pub encryption: S3Encryption,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            region: "us-east-1".into(),
            endpoint_url: None,
            force_path_style: false,
            credentials: None,
            max_attempts: 5,
            encryption: S3Encryption::default(),
        }
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (without slashes at its ends).
pub fn parse_s3_url(location: &str) -> Result<(String, String), LakeError> {
    let bad = |message: &str| LakeError::Location {
        location: location.to_string(),
        message: message.to_string(),
    };
    let rest = location
        .strip_prefix("s3://")
        .ok_or_else(|| bad("not an s3:// URL"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("the bucket name is missing; write s3://bucket/prefix"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// Opens the object store of an `s3://bucket/prefix` lake: paths of the lake are keys below
/// `prefix/`. Makes no request.
pub fn open_s3_store(
    location: &str,
    options: &S3Options,
) -> Result<Arc<dyn ObjectStore>, LakeError> {
    let bad = |message: String| LakeError::Location {
        location: location.to_string(),
        message,
    };
    let (bucket, prefix) = parse_s3_url(location)?;
    let mut builder = match &options.credentials {
        Some(provider) => AmazonS3Builder::new().with_credentials(Arc::clone(provider)),
        None => AmazonS3Builder::from_env(),
    };
    builder = builder
        .with_bucket_name(&bucket)
        .with_region(&options.region)
        .with_virtual_hosted_style_request(!options.force_path_style)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(20),
                base: 2.0,
            },
            max_retries: options.max_attempts.saturating_sub(1) as usize,
            retry_timeout: Duration::from_secs(300),
        });
    if let Some(url) = &options.endpoint_url {
        builder = builder
            .with_endpoint(url)
            .with_allow_http(url.starts_with("http://"));
    }
    match &options.encryption {
        S3Encryption::BucketDefault => {}
        S3Encryption::S3Managed => {
            let key = AmazonS3ConfigKey::from_str("aws_server_side_encryption")
                .map_err(|e| bad(e.to_string()))?;
            builder = builder.with_config(key, "AES256");
        }
        S3Encryption::Kms { key_id } => {
            builder = builder
                .with_sse_kms_encryption(key_id)
                .with_bucket_key(true)
        }
    }
    let store = builder.build().map_err(|e| bad(e.to_string()))?;
    tracing::debug!(
        bucket,
        prefix,
        endpoint = options.endpoint_url.as_deref().unwrap_or("<aws>"),
        "opened S3 lake store"
    );
    if prefix.is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_s3_url("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_s3_url("s3:///p")
            .unwrap_err()
            .to_string()
            .contains("bucket"));
        assert!(parse_s3_url("/tmp/x").is_err());
    }
}
