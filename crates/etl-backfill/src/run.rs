//! Running a plan: the sources through the pipeline into the [`Rewriter`], and the summary.

use crate::kinesis::KinesisSource;
use crate::plan::{manifests_by_batch, Plan, Unit};
use crate::source::{file_tag, FileSource, RawSource, SourceStats};
use crate::writer::Rewriter;
use crate::BackfillError;
use etl_pipeline::{Pipeline, Progress, StreamSummary};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The revision a run with transform fingerprint `fingerprint` gives batch (or file) `id`: 16 hex
/// digits of SHA-256. The same transform and schema give the same revision, so a batch already
/// written by them is recognised.
pub fn revision(fingerprint: &str, id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(fingerprint.as_bytes())
        .chain_update(b"\n")
        .chain_update(id.as_bytes())
        .finalize();
    hex::encode(&digest[..8])
}

/// What a backfill did.
#[derive(Debug, Default, Serialize)]
pub struct BackfillSummary {
    /// The records: read, written, duplicates, filtered, dead-lettered, partitions, duration.
    pub records: StreamSummary,
    /// Units of work this task ran.
    pub units: u64,
    /// Batches rewritten by this run.
    pub batches_rewritten: u64,
    /// Batches (raw) already written by this revision: skipped.
    pub batches_done_before: u64,
    /// Batches whose first record arrived outside the range (edge hours): left alone.
    pub batches_outside_range: u64,
    /// Files (historical) already ingested by this revision: skipped.
    pub files_done_before: u64,
    /// Objects of replaced versions that the new version did not write again, removed.
    pub objects_removed: u64,
    /// Batches left alone as the newest of their shard.
    pub newest_skipped: u64,
    /// Wall time.
    #[serde(serialize_with = "seconds")]
    pub elapsed: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl std::fmt::Display for BackfillSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.records)?;
        writeln!(
            f,
            "backfill: {} units, {} batches rewritten, {} already done, {} outside the range, {} newest left alone, {} files already done, {} old objects removed, {:.1}s",
            self.units,
            self.batches_rewritten,
            self.batches_done_before,
            self.batches_outside_range,
            self.newest_skipped,
            self.files_done_before,
            self.objects_removed,
            self.elapsed.as_secs_f64()
        )
    }
}

/// A backfill of one stream with one pipeline (the current schema and transform).
pub struct Backfill<'a> {
    pipeline: &'a Pipeline,
    stream: String,
    fingerprint: String,
    range: (i64, i64),
    kinesis: Option<(etl_aws::kinesis::Client, String)>,
}

/// The marker of a historical file ingested by a revision.
fn file_marker(stream: &str, tag: &str, revision: &str) -> String {
    format!("_backfill/{stream}/files/{tag}@{revision}.json")
}

impl<'a> Backfill<'a> {
    /// A backfill of `stream` through `pipeline`; `fingerprint` identifies the schema, transform
    /// and masking key (the revision derives from it); `range` (ms, `[from, to)`) selects raw
    /// batches by their first record's arrival.
    pub fn new(pipeline: &'a Pipeline, stream: &str, fingerprint: &str, range: (i64, i64)) -> Self {
        Backfill {
            pipeline,
            stream: stream.to_string(),
            fingerprint: fingerprint.to_string(),
            range,
            kinesis: None,
        }
    }

    /// Reads the batches of Kinesis units from `kinesis_stream` with `client`.
    pub fn with_kinesis(mut self, client: etl_aws::kinesis::Client, kinesis_stream: &str) -> Self {
        self.kinesis = Some((client, kinesis_stream.to_string()));
        self
    }

    /// Runs `plan` (already sliced to this task); `progress` gets records and bytes read so far.
    pub async fn run(
        &self,
        plan: &Plan,
        progress: Option<Progress>,
    ) -> Result<BackfillSummary, BackfillError> {
        let started = Instant::now();
        let lake = self.pipeline.lake().clone();
        let writer = Arc::new(Rewriter::new(lake.clone(), self.pipeline.catalog().clone()));
        let stats = Arc::new(Mutex::new(SourceStats::default()));
        let mut summary = BackfillSummary {
            units: plan.units.len() as u64,
            newest_skipped: plan.newest_skipped.len() as u64,
            records: StreamSummary {
                stream: self.stream.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut run = Run {
            backfill: self,
            writer: writer.clone(),
            progress,
            done: Arc::new(Mutex::new((0, 0))),
            records: &mut summary.records,
        };
        if plan.units.iter().any(|u| matches!(u, Unit::Raw { .. })) {
            let source = RawSource::new(
                lake.clone(),
                &self.stream,
                &plan.units,
                self.range,
                &self.fingerprint,
                stats.clone(),
            );
            run.ingest(Box::new(source)).await?;
        }
        let shards: Vec<String> = plan
            .units
            .iter()
            .filter_map(|u| match u {
                Unit::Kinesis { shard, .. } => Some(shard.clone()),
                _ => None,
            })
            .collect();
        if !shards.is_empty() {
            let Some((client, kinesis_stream)) = &self.kinesis else {
                return Err(BackfillError::Option {
                    field: "--source kinesis",
                    message: "no Kinesis client was given".into(),
                });
            };
            let manifests = Arc::new(manifests_by_batch(&lake, &self.stream).await?);
            let source = KinesisSource::new(
                lake.clone(),
                &self.stream,
                client.clone(),
                kinesis_stream,
                shards,
                self.range,
                &self.fingerprint,
                manifests,
                stats.clone(),
            );
            run.ingest(Box::new(source)).await?;
        }
        let files: Vec<_> = plan
            .units
            .iter()
            .filter_map(|u| match u {
                Unit::File(f) => Some(f),
                Unit::Raw { .. } | Unit::Kinesis { .. } => None,
            })
            .collect();
        let mut files_done_before = 0;
        if !files.is_empty() {
            let manifests = Arc::new(manifests_by_batch(&lake, &self.stream).await?);
            let dead_dt = chrono::Utc::now().format("%Y-%m-%d").to_string();
            for file in files {
                let tag = file_tag(&file.path);
                let marker = file_marker(&self.stream, &tag, &revision(&self.fingerprint, &tag));
                if lake.get(&marker).await?.is_some() {
                    files_done_before += 1;
                    continue;
                }
                let source =
                    FileSource::open(file, &self.fingerprint, manifests.clone(), &dead_dt).await?;
                let s = run.ingest(Box::new(source)).await?;
                let body = serde_json::to_vec_pretty(&serde_json::json!({
                    "file": file.name(),
                    "read": s.read,
                    "written": s.written,
                    "duplicates": s.duplicates,
                    "filtered": s.filtered,
                    "dead_lettered": s.dead_lettered,
                }))
                .map_err(|e| BackfillError::Read {
                    path: marker.clone(),
                    message: e.to_string(),
                })?;
                lake.put(&marker, body.into()).await?;
            }
        }
        summary.files_done_before = files_done_before;
        let stats = *stats.lock().unwrap_or_else(|e| e.into_inner());
        summary.batches_rewritten = writer.rewritten();
        summary.batches_done_before = stats.done_before;
        summary.batches_outside_range = stats.outside_range;
        summary.objects_removed = writer.removed();
        summary.elapsed = started.elapsed();
        summary.records.elapsed = summary.elapsed;
        Ok(summary)
    }
}

/// One run's pipeline calls: each source in turn into the same writer, with progress counted
/// across them and the records added to the summary.
struct Run<'r, 'a> {
    backfill: &'r Backfill<'a>,
    writer: Arc<Rewriter>,
    progress: Option<Progress>,
    /// Records and bytes of the sources already finished.
    done: Arc<Mutex<(u64, u64)>>,
    records: &'r mut StreamSummary,
}

impl Run<'_, '_> {
    async fn ingest(
        &mut self,
        source: Box<dyn etl_pipeline::RecordSource>,
    ) -> Result<StreamSummary, BackfillError> {
        let progress = self.progress.clone().map(|p| {
            let done = self.done.clone();
            Arc::new(move |records: u64, bytes: u64| {
                let (r, b) = *done.lock().unwrap_or_else(|e| e.into_inner());
                p(r + records, b + bytes)
            }) as Progress
        });
        let s = self
            .backfill
            .pipeline
            .ingest_with_writer(&self.backfill.stream, source, progress, self.writer.clone())
            .await?;
        self.records.merge(&s);
        let mut d = self.done.lock().unwrap_or_else(|e| e.into_inner());
        d.0 += s.read;
        d.1 += s.bytes_read;
        Ok(s)
    }
}
