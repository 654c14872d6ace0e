//! Kinesis Data Streams connector: the source that feeds `etl run` and the `PutRecords` producer
//! that `etl produce` sends its records with (the records themselves come from the caller).
//!
//! **What it does.**
//! - [`shards`]: discovers shards with `ListShards` (paginated) and applies the resharding rule
//!   (a child is read only after every parent was read to its end and that was committed).
//! - [`reader`]: one task per shard, `GetShardIterator` + `GetRecords`, paced to the per-shard
//!   limit, backing off while idle, recovering from `ExpiredIteratorException`, reporting
//!   `MillisBehindLatest`.
//! - [`kpl`]: KPL de-aggregation (magic + protobuf + MD5; anything invalid passes through
//!   unchanged), gzip detection, and the aggregator the producer uses.
//! - [`source`]: [`KinesisSource`], an `etl_pipeline::source::RecordSource` that cuts each
//!   shard's records into micro-batches by count, bytes and time, and [`PositionCommitter`], the
//!   pipeline's `BatchWriter` that commits each batch with its shard position (exactly once).
//! - [`positions`]: positions `(shard, sequence number, sub-sequence)`, the [`PositionStore`]
//!   interface, and [`LakePositionStore`] (objects in the lake).
//! - [`producer`]: `PutRecords` in batches of at most 500, retrying failed entries, optionally
//!   KPL-aggregated, at a target rate.
//!
//! - [`leases`]: shard leases in DynamoDB (KCL's table layout) so several processes share a
//!   stream's shards, balanced, with fast takeover and handover at shutdown (`docs/leases.md`);
//!   off unless `SourceOptions::leases` is set (one process then owns every shard).
//!
//! **What it does not do.** No enhanced fan-out (`SubscribeToShard`), and no retry
//! loop of its own around a call for throttling or 5xx: the SDK's retry mode configured in
//! `etl-aws` is the one retry layer; when the SDK gives up, a reader pauses its shard and goes on
//! (the rule is in [`reader`]). It builds no AWS client: callers pass one from
//! `etl_aws::AwsClients`.
//!
//! **Metrics.** [`metrics`]: counters and per-shard lag (`MillisBehindLatest`, event-time lag),
//! names listed in `docs/kinesis.md`.
//!
//! **Delivery.** Exactly once: each batch holds one shard's records and is committed with its
//! shard position as one record of the shard's commit log (`etl_lake::delivery`,
//! `docs/delivery.md`), so a crash at any point neither loses nor duplicates an event in the
//! lake, and a second consumer on the same shard is fenced.

pub mod kpl;
pub mod leases;
pub mod metrics;
pub mod positions;
pub mod producer;
pub mod reader;
pub mod shards;
pub mod source;

pub use metrics::{ReaderCounts, ReaderMetrics, ShardLag};
pub use positions::{
    LakePositionStore, PositionStore, RecordPosition, SequenceNumber, ShardPosition,
};
pub use producer::{produce, ProduceOptions, ProduceSummary};
pub use reader::{ReaderOptions, StartPosition};
pub use source::{
    open_source, writer_name, KinesisSource, LakeTarget, LeaseCounts, PositionCommitter,
    SourceOptions, StopHandle,
};

/// Errors of the Kinesis connector.
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// The stream does not exist (or a shard of it).
    #[error("Kinesis stream {0} does not exist: create it or fix the stream name")]
    StreamNotFound(String),
    /// An AWS call failed after the SDK's retries.
    #[error("Kinesis {operation} on {stream} failed: {message}")]
    Call {
        operation: &'static str,
        stream: String,
        message: String,
    },
    /// Kinesis answered something this code cannot use.
    #[error("unexpected Kinesis response: {0}")]
    Protocol(String),
    /// Reading or writing positions failed.
    #[error("shard positions: {0}")]
    Positions(String),
    /// Committing a batch through the lake's delivery protocol failed.
    #[error("lake delivery: {0}")]
    Delivery(#[from] etl_lake::delivery::DeliveryError),
    /// The committer was handed something it cannot commit (a bug).
    #[error("committer: {0}")]
    Committer(String),
    /// Another consumer committed the same record of a shard's log: this one must stop.
    #[error("fenced: {0}")]
    Fenced(String),
    /// With leases: the shard's lease is no longer held here (or was not renewed in time).
    #[error("lease lost: {0}")]
    LeaseLost(String),
    /// The lake failed (positions are kept there).
    #[error(transparent)]
    Lake(#[from] etl_lake::LakeError),
    /// Bad options.
    #[error("invalid option {0}")]
    Option(String),
}

impl KinesisError {
    /// What `etl run` does about this error (the rule is on [`etl_pipeline::ErrorKind`]).
    pub fn kind(&self) -> etl_pipeline::ErrorKind {
        use etl_lake::delivery::DeliveryError as D;
        use etl_pipeline::ErrorKind::*;
        match self {
            KinesisError::Fenced(_) | KinesisError::LeaseLost(_) => ShardFatal,
            KinesisError::Delivery(
                D::Fenced { .. }
                | D::Inconsistent { .. }
                | D::Checksum { .. }
                | D::Corrupt { .. }
                | D::NeedsReplay { .. },
            ) => ShardFatal,
            KinesisError::Delivery(D::Lake(_) | D::Catalog(_)) | KinesisError::Lake(_) => Retryable,
            KinesisError::Call { .. } => Retryable,
            KinesisError::Delivery(D::Injected(_))
            | KinesisError::StreamNotFound(_)
            | KinesisError::Protocol(_)
            | KinesisError::Positions(_)
            | KinesisError::Committer(_)
            | KinesisError::Option(_) => RunFatal,
        }
    }

    pub(crate) fn call(
        operation: &'static str,
        stream: &str,
        err: &(dyn std::error::Error + 'static),
    ) -> Self {
        KinesisError::Call {
            operation,
            stream: stream.to_string(),
            message: etl_aws::describe_error(err),
        }
    }
}
