//! The lake: Parquet files under Hive partitions, dead letters, batch commit records and the
//! catalog of tables and partitions.
//!
//! Everything is written through the `object_store` crate, so the same code writes to a local
//! directory (`etl demo`, `etl ingest`) and to `s3://bucket/prefix` ([`open_s3_store`]: SSE,
//! multipart uploads above [`MULTIPART_THRESHOLD_BYTES`], one retry layer). Layout under the
//! lake root:
//!
//! ```text
//! <table>/dt=YYYY-MM-DD/hour=HH/<batch-id>-<n>.parquet   data (no dt/hour columns inside)
//! dead-letters/<stream>/dt=YYYY-MM-DD/<batch-id>.ndjson   rejected records with reasons
//! _commits/<stream>/<batch-id>.json                       what one batch wrote (manifest)
//! raw/<table>/dt=YYYY-MM-DD/hour=HH/<batch-id>.ndjson.gz   raw archive of the Kinesis consumer
//! _catalog/catalog.json                                   the local file catalog
//! ```
//!
//! File names derive from the batch id, which derives from the source position, so re-running
//! the same input overwrites files instead of duplicating them.
//!
//! [`delivery`] is the exactly-once protocol of `docs/delivery.md` for the Kinesis consumer:
//! files staged under `_staging/`, a per-shard commit log `_delivery/<stream>/<shard>/<n>.json`
//! written with create-if-absent (the fence) and holding the positions, then publication under
//! the deterministic names and roll-forward recovery. The Kinesis consumer (`etl-kinesis`)
//! commits every batch through it.
//!
//! This crate does not decode, transform or deduplicate records; it writes what it is given.

pub mod catalog;
mod dead_letters;
pub mod delivery;
mod encode;
mod footer;
mod layout;
pub mod raw;
mod s3;
mod store;

pub use dead_letters::{DeadLetter, DeadLetterSource};
pub use encode::{encode_partitions, Compression, EncodedFile, ParquetOptions, Statistics};
pub use layout::{BatchId, PartitionValues};
pub use s3::{open_s3_store, parse_s3_url, S3CredentialProvider, S3Encryption, S3Options};
pub use store::{
    open_store, BatchCommit, BatchSource, CommittedFile, Lake, PositionRange, MULTIPART_PART_BYTES,
    MULTIPART_THRESHOLD_BYTES,
};

impl LakeError {
    /// Whether trying again later may succeed: the object store could not be reached or
    /// answered with a server error after its own retries (`object_store`'s `Generic` errors).
    /// Permission, authentication, configuration and data errors are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            LakeError::Write { source, .. } | LakeError::Read { source, .. } => matches!(
                source,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            _ => false,
        }
    }
}

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake location `{location}` cannot be used: {message}")]
    Location { location: String, message: String },
    #[error("writing {path} failed: {source}")]
    Write {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("reading {path} failed: {source}")]
    Read {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("encoding Parquet for {table} failed: {source}")]
    Parquet {
        table: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("reading the Parquet footer of {path} failed: {message}")]
    Footer { path: String, message: String },
    #[error("batch is missing column `{0}`; the transform must produce the partition columns dt and hour")]
    MissingColumn(String),
    #[error("invalid option {field}: {message}")]
    Option {
        field: &'static str,
        message: String,
    },
    #[error("catalog {path} is corrupt: {message}; restore it from a backup or delete it and run `etl catalog sync`")]
    CorruptCatalog { path: String, message: String },
    #[error("gzip of {path} failed: {source}")]
    Gzip {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("internal Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("internal JSON error: {0}")]
    Json(#[from] serde_json::Error),
}
