//! Pipeline options.

use etl_lake::ParquetOptions;
use serde::{Deserialize, Serialize};

/// How records are batched and written. Every field has a default; see each field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineOptions {
    /// Most records in one micro-batch. Default: 65536.
    pub batch_max_records: usize,
    /// Most bytes of input in one micro-batch. Default: 32 MiB.
    pub batch_max_bytes: usize,
    /// Records longer than this are dead-lettered as `too_large`. Default: 1 MiB (Kinesis' default record limit).
    pub max_record_bytes: usize,
    /// Batches processed at once, across all the streams the pipeline runs at the same time
    /// (each batch holds about `batch_max_bytes` of input plus its Arrow columns while in the
    /// transform). Default: the number of CPU cores.
    pub parallelism: usize,
    /// How many recent event ids are remembered to drop duplicates across batches. Default: 1,000,000
    /// (about 50 MB). 0 turns cross-batch dedup off (within a batch the transform SQL dedups).
    pub dedup_window: usize,
    /// Parquet settings.
    pub parquet: ParquetOptions,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            batch_max_records: 64 * 1024,
            batch_max_bytes: 32 << 20,
            max_record_bytes: 1 << 20,
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            dedup_window: 1_000_000,
            parquet: ParquetOptions::default(),
        }
    }
}

impl PipelineOptions {
    /// Checks the values; the error names the field and the fix.
    pub fn validate(&self) -> Result<(), crate::PipelineError> {
        let bad = |field, message: &str| {
            Err(crate::PipelineError::Option {
                field,
                message: message.into(),
            })
        };
        if self.batch_max_records == 0 {
            return bad("batch_max_records", "must be at least 1 (default 65536)");
        }
        if self.batch_max_bytes < 1024 {
            return bad(
                "batch_max_bytes",
                "must be at least 1024 bytes (default 32 MiB)",
            );
        }
        if self.max_record_bytes == 0 {
            return bad("max_record_bytes", "must be at least 1 (default 1 MiB)");
        }
        if self.parallelism == 0 {
            return bad(
                "parallelism",
                "must be at least 1 (default: number of cores)",
            );
        }
        Ok(())
    }
}
