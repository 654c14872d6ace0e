//! The committing half of the source: where batches go ([`LakeTarget`]) and how
//! [`PositionCommitter`] commits one batch (one shard's records) as the next record of the
//! shard's commit log, with the shard position, through `etl_lake::delivery`.

use super::{chrono_now_ms, KinesisCheckpoint, PositionCommitter};
use crate::positions::ShardPosition;
use crate::KinesisError;
use async_trait::async_trait;
use etl_lake::catalog::Catalog;
use etl_lake::delivery::{
    prepare_batch, BatchFile, Delivery, DeliveryError, FailPoint, ManifestPositions, Resume,
};
use etl_lake::raw::{encode_raw, raw_file, RawLine};
use etl_lake::{BatchCommit, BatchId, Lake, PositionRange};
use etl_pipeline::{BatchWriter, CommitError, ErrorKind, ProcessedBatch};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Where the consumer delivers: the lake, the table (the pipeline stream), the catalog that
/// partitions are registered in, and the writer's name in commit records.
#[derive(Clone)]
pub struct LakeTarget {
    /// The lake (local directory or S3).
    pub lake: Lake,
    /// Table = pipeline stream, e.g. `app_events`.
    pub table: String,
    /// Catalog for the partitions of committed batches (`None`: none registered).
    pub catalog: Option<Arc<dyn Catalog>>,
    /// Name of this writer in commit records (diagnostics; unique per process).
    pub writer: String,
    /// Test only: make the `k`-th commit of this run (0-based) stop at this point as if the
    /// process had died.
    pub fail_at: Option<(u64, FailPoint)>,
    /// Also archive the raw records of each batch (on by default): one gzip NDJSON file
    /// `raw/<table>/dt=…/hour=…/<batch-id>.ndjson.gz` per batch, a file of the batch's commit
    /// record, so published exactly once with it (`etl_lake::raw`, `docs/delivery.md`).
    pub raw_archive: bool,
}

impl LakeTarget {
    /// Delivery of `table` into `lake`, partitions to `catalog`, writer named by [`writer_name`].
    pub fn new(lake: Lake, table: &str, catalog: Option<Arc<dyn Catalog>>) -> Self {
        LakeTarget {
            lake,
            table: table.to_string(),
            catalog,
            writer: writer_name(),
            fail_at: None,
            raw_archive: true,
        }
    }
}

/// `<host>-<pid>-<start ms>`: a writer name unique per process.
pub fn writer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}-{}", std::process::id(), chrono_now_ms())
}

/// The raw archive file of a batch (if the ledger kept its bytes): every record with its
/// position and arrival time, in batch order, under the arrival hour of the first record.
fn raw_archive_file(
    table: &str,
    shard: &str,
    batch_id: &BatchId,
    info: &KinesisCheckpoint,
) -> Result<Option<BatchFile>, KinesisError> {
    let Some((data, ranges)) = &info.raw else {
        return Ok(None);
    };
    if ranges.len() != info.positions.len() {
        return Err(KinesisError::Committer(format!(
            "batch {batch_id}: {} raw records for {} positions",
            ranges.len(),
            info.positions.len()
        )));
    }
    let lines: Vec<RawLine> = info
        .positions
        .iter()
        .zip(ranges)
        .enumerate()
        .map(|(i, (p, &(start, end)))| {
            RawLine::new(
                shard,
                p.sequence_number.as_str(),
                p.sub_sequence,
                info.arrivals.get(i).copied().flatten(),
                data.get(start..end).unwrap_or_default(),
            )
        })
        .collect();
    let first_arrival = info.arrivals.first().copied().flatten();
    let path = raw_file(table, first_arrival, batch_id);
    let bytes = encode_raw(&path, &lines)?;
    Ok(Some(BatchFile {
        path,
        partition: None,
        bytes,
    }))
}

impl PositionCommitter {
    async fn commit(
        &self,
        table: &str,
        batch: ProcessedBatch,
    ) -> Result<BatchCommit, KinesisError> {
        let shared = &self.shared;
        if table != shared.target.table {
            return Err(KinesisError::Committer(format!(
                "the source delivers to table {} but the pipeline runs stream {table}",
                shared.target.table
            )));
        }
        let info = batch
            .checkpoint
            .into_any()
            .downcast::<KinesisCheckpoint>()
            .map_err(|_| {
                KinesisError::Committer(
                    "the Kinesis committer was given a batch of another source".into(),
                )
            })?;
        let shard = info.shard.to_string();
        let epoch = info.epoch;
        let result = self
            .commit_shard(
                table,
                &shard,
                epoch,
                batch.dead_letters,
                batch.files,
                batch.dead_letter_dt,
                *info,
                batch.schema_version,
            )
            .await;
        if result.is_err() {
            if let Some(n) = shared.lock().in_flight.get_mut(&shard) {
                *n = n.saturating_sub(1);
            }
        }
        if let Err(e) = &result {
            if shared.leases.is_some() && e.kind() == etl_pipeline::ErrorKind::ShardFatal {
                shared.fenced(&shard).await;
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit_shard(
        &self,
        table: &str,
        shard: &str,
        epoch: u64,
        dead_letters: Vec<etl_lake::DeadLetter>,
        data: Vec<etl_lake::EncodedFile>,
        dead_letter_dt: String,
        info: KinesisCheckpoint,
        schema_version: u32,
    ) -> Result<BatchCommit, KinesisError> {
        let shared = &self.shared;
        let shard = shard.to_string();
        if let Some(rt) = &shared.leases {
            if !rt.may_commit(&shard, epoch) {
                return Err(KinesisError::LeaseLost(format!(
                    "shard {shard} of Kinesis stream {}: this process no longer holds its lease (or could not renew it in time); the batch is left to the new owner",
                    shared.stream
                )));
            }
        }
        let (resume, k) = {
            let mut state = shared.lock();
            let resume = state.resume.get(&shard).cloned();
            let k = state.commits;
            state.commits += 1;
            (resume, k)
        };
        let resume = resume.ok_or_else(|| {
            KinesisError::Committer(format!("shard {shard} has no recovered commit log"))
        })?;
        let (Some(first), Some(last)) = (info.positions.first(), info.positions.last()) else {
            return Err(KinesisError::Committer(format!(
                "empty batch of shard {shard}"
            )));
        };
        let (first_text, last_text) = (first.to_text(), last.to_text());
        let source_name = format!("kinesis:{}/{shard}", shared.stream);
        // Positions came from the checkpoint; the name says which shard.
        let mut dead = dead_letters;
        for d in &mut dead {
            d.source.name = source_name.clone();
        }
        let batch_id = BatchId::for_range(&shard, &first_text, &last_text);
        let range = PositionRange {
            shard: format!("{}/{shard}", shared.stream),
            first: first_text.clone(),
            last: last_text.clone(),
        };
        let raw = raw_archive_file(table, &shard, &batch_id, &info)?;
        let (files, manifest) = prepare_batch(
            table,
            &batch_id,
            &source_name,
            ManifestPositions::Range(range),
            data,
            &dead,
            &dead_letter_dt,
            raw,
            Some(schema_version),
        )?;
        let mut delivery = shared.delivery(&shard);
        if let Some((at, point)) = shared.target.fail_at {
            if at == k {
                delivery = delivery.fail_at(point);
            }
        }
        let next = self
            .commit_riding_outages(
                &delivery,
                &resume,
                (&first_text, &last_text),
                files,
                (&shard, epoch),
            )
            .await?;
        tracing::debug!(
            stream = shared.stream,
            shard,
            n = resume.next,
            last = last_text,
            "batch committed"
        );
        let mut state = shared.lock();
        state.resume.insert(shard.clone(), next);
        if let Some(n) = state.in_flight.get_mut(&shard) {
            *n = n.saturating_sub(1);
        }
        state.committed.insert(
            shard.clone(),
            ShardPosition {
                shard_id: shard,
                last: Some(last.clone()),
                finished: false,
            },
        );
        Ok(manifest)
    }
}

impl PositionCommitter {
    /// Commits `files` as record `resume.next` of `shard`'s log, riding out a lake or catalog
    /// that is unavailable (`DeliveryError::is_transient`): it waits with the project's backoff
    /// (`SourceOptions::commit_retry_*`), recovers the shard's log — the failed attempt may have
    /// created the record, which recovery then publishes — and commits again, until it
    /// succeeds or a stop is requested. The stream's later batches wait behind it (commits are
    /// in order); its shards' readers keep their place. Anything else stops the stream.
    async fn commit_riding_outages(
        &self,
        delivery: &Delivery,
        resume: &Resume,
        (first, last): (&str, &str),
        files: Vec<BatchFile>,
        (shard, epoch): (&str, u64),
    ) -> Result<Resume, KinesisError> {
        let shared = &self.shared;
        let fenced = |e: DeliveryError| {
            match e {
            DeliveryError::Fenced { .. } => KinesisError::Fenced(format!(
                "{e}. Another consumer is writing shard {shard} of Kinesis stream {}; this one stops",
                shared.stream
            )),
            other => KinesisError::Delivery(other),
        }
        };
        let options = &shared.options;
        let mut backoff =
            etl_aws::backoff::Backoff::new(options.commit_retry_initial, options.commit_retry_max);
        loop {
            let error = match delivery.commit(resume, first, last, files.clone()).await {
                Ok((_, next)) => return Ok(next),
                Err(e) if e.is_transient() && !shared.stop.is_stopped() => e,
                Err(e) => return Err(fenced(e)),
            };
            // Wait, then find out what the failed attempt left: nothing, or the record.
            let mut error = error;
            loop {
                let pause = backoff.next_delay();
                tracing::warn!(
                    stream = shared.stream,
                    shard,
                    record = resume.next,
                    %error,
                    failures_in_a_row = backoff.failures(),
                    pause_ms = pause.as_millis() as u64,
                    "committing to the lake failed (unavailable); the stream's commits wait and retry"
                );
                tokio::time::sleep(pause).await;
                if shared.stop.is_stopped() {
                    return Err(KinesisError::Delivery(error));
                }
                if shared
                    .leases
                    .as_ref()
                    .is_some_and(|rt| !rt.may_commit(shard, epoch))
                {
                    return Err(KinesisError::LeaseLost(format!(
                        "shard {shard} of Kinesis stream {}: the lease could not be kept while record {} was being retried; recovery by the next owner finishes or replaces it",
                        shared.stream, resume.next
                    )));
                }
                match delivery.recover().await {
                    Ok(now) if now.next == resume.next + 1 && now.after.as_deref() == Some(last) => {
                        tracing::info!(stream = shared.stream, shard, record = resume.next, "the failed attempt had committed the batch; recovery published it");
                        return Ok(now);
                    }
                    Ok(now) if now == *resume => break,
                    Ok(now) => {
                        return Err(KinesisError::Fenced(format!(
                            "shard {shard} of Kinesis stream {}: while record {} was being retried the log moved on to {now:?}: another consumer committed it; this one stops",
                            shared.stream, resume.next
                        )))
                    }
                    Err(e) if e.is_transient() && !shared.stop.is_stopped() => error = e,
                    Err(e) => return Err(fenced(e)),
                }
            }
        }
    }
}

#[async_trait]
impl BatchWriter for PositionCommitter {
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, CommitError> {
        self.commit(stream, batch).await.map_err(|e| {
            let mut kind = e.kind();
            // Without leases no other process of this deployment reads the shard if this one
            // gives it up: the run stops, as two consumers on one stream are a misconfiguration.
            if kind == ErrorKind::ShardFatal && self.shared.leases.is_none() {
                kind = ErrorKind::RunFatal;
            }
            CommitError::new(kind, e)
        })
    }
}

impl PositionCommitter {
    /// Lag of each shard read: the last `MillisBehindLatest` and the event-time lag (now − the
    /// newest `occurred_at` committed); see [`crate::metrics`].
    pub fn shard_lag(&self) -> BTreeMap<String, crate::metrics::ShardLag> {
        let committed = self.committed();
        self.shared
            .options
            .reader
            .metrics
            .lag(&committed, chrono_now_ms())
    }

    /// The readers' counters (calls, records, throttled, failed, expired iterators).
    pub fn reader_counts(&self) -> crate::metrics::ReaderCounts {
        self.shared.options.reader.metrics.counts()
    }

    /// `MillisBehindLatest` of each shard, as last reported.
    pub fn lag(&self) -> HashMap<String, i64> {
        self.shared.lock().lag.clone()
    }

    /// Committed positions by shard.
    pub fn committed(&self) -> HashMap<String, ShardPosition> {
        self.shared.lock().committed.clone()
    }

    /// Marks the ends of shards read to their end whose records are all committed. Call after
    /// the pipeline run returned (the background task does it while the run goes on).
    ///
    /// With leases, it then releases every lease held (and removes this process's heartbeat):
    /// call it once, at the end of the run, after every batch was committed; peers take the
    /// shards in their next pass (`docs/leases.md`, graceful handover).
    pub async fn flush(&self) -> Result<(), KinesisError> {
        let ended = self.shared.commit_ends().await;
        self.shared.release_all().await;
        ended
    }

    /// With leases: the leases held now and the lease changes so far (`None` without leases).
    pub fn lease_counts(&self) -> Option<super::LeaseCounts> {
        self.shared.leases.as_ref().map(|rt| rt.counts())
    }
}
