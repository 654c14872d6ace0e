//! The lake's AWS side: the Glue Data Catalog and the S3 wiring of the lake store.
//!
//! **What it does.** [`GlueCatalog`] implements `etl_lake::catalog::Catalog` in Glue: it creates
//! the database and one external Parquet table per stream with exactly the fields Athena needs
//! ([`table::table_input`]: `EXTERNAL_TABLE`, `classification=parquet`, the Hive Parquet
//! input/output formats and `ParquetHiveSerDe`, Hive column types and comments, string partition
//! keys `dt` and `hour`, optional partition projection), keeps it in step with `schemas/`
//! (additive changes become `UpdateTable`; a breaking change is refused naming the field, and
//! the table is left as it was) and registers partitions with `BatchCreatePartition` (≤ 100 per
//! call, each with a full storage descriptor, "already exists" counted as success).
//! [`s3_options`] turns the project's [`etl_aws::AwsSettings`] into the lake's
//! [`etl_lake::S3Options`], so the S3 lake store and the SDK clients reach the same endpoint
//! with the same credentials and attempt budget.
//!
//! **What it does not do.** It writes no data (see `etl-lake`), builds no AWS client (see
//! `etl-aws`), runs no Athena query, and adds no retry loop: the SDK's standard retry mode,
//! configured in `etl-aws`, is the only one. The local `FileCatalog` of `etl demo` stays in
//! `etl-lake`.

mod catalog;
pub mod table;

pub use catalog::{GlueCatalog, MAX_PARTITIONS_PER_CALL};
pub use table::Projection;

use std::sync::Arc;

use etl_aws::{AwsClients, AwsSettings, ChainCredentials};
use etl_lake::{S3CredentialProvider, S3Encryption, S3Options};

/// The lake store's S3 options from the project's AWS settings, with `encryption` for writes.
///
/// Credentials come from the SDK's chain for `settings` (the `[aws] credentials` override, else
/// environment, profile, web identity, ECS, instance metadata), loaded on the first request.
/// Where [`AwsClients`] are already loaded, [`s3_options_for`] shares their chain instead.
pub fn s3_options(settings: &AwsSettings, encryption: S3Encryption) -> S3Options {
    let chain: S3CredentialProvider = Arc::new(ChainCredentials::lazy(settings.clone()));
    options(settings, Some(chain), encryption)
}

/// [`s3_options`] signing with the credential chain of already loaded `clients` (which must
/// have been loaded from `settings`).
pub fn s3_options_for(
    clients: &AwsClients,
    settings: &AwsSettings,
    encryption: S3Encryption,
) -> S3Options {
    let chain = clients
        .object_store_credentials()
        .map(|c| c as S3CredentialProvider)
        .unwrap_or_else(|| Arc::new(ChainCredentials::lazy(settings.clone())));
    options(settings, Some(chain), encryption)
}

fn options(
    settings: &AwsSettings,
    credentials: Option<S3CredentialProvider>,
    encryption: S3Encryption,
) -> S3Options {
    S3Options {
        region: settings.region.clone(),
        endpoint_url: settings.endpoint_url.clone(),
        force_path_style: settings.force_path_style,
        credentials,
        max_attempts: settings.max_attempts,
        encryption,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn s3_options_follow_the_aws_settings() {
        let mut settings = AwsSettings::local("http://127.0.0.1:5000", "eu-west-1");
        settings.max_attempts = 3;
        let o = s3_options(
            &settings,
            S3Encryption::Kms {
                key_id: "alias/lake".into(),
            },
        );
        assert_eq!(o.region, "eu-west-1");
        assert_eq!(o.endpoint_url.as_deref(), Some("http://127.0.0.1:5000"));
        assert!(o.force_path_style);
        assert_eq!(o.max_attempts, 3);
        let provider = o.credentials.as_ref().expect("the SDK chain");
        let credential = provider.get_credential().await.expect("static credentials");
        assert_eq!(credential.key_id, "testing");
        assert_eq!(
            o.encryption,
            S3Encryption::Kms {
                key_id: "alias/lake".into()
            }
        );
    }
}
