//! Running one stream's records through the pipeline.

use crate::dedup::DedupWindow;
use crate::source::{RawBatch, RecordSource};
use crate::{PipelineError, PipelineOptions, StreamSummary};
use arrow::array::RecordBatch;
use async_trait::async_trait;
use etl_decode::{DecodeOptions, Decoder};
use etl_lake::catalog::{Catalog, TableChange};
use etl_lake::{
    encode_partitions, BatchCommit, BatchId, BatchSource, DeadLetter, DeadLetterSource,
    EncodedFile, Lake,
};
use etl_schema::StreamSchema;
use etl_transform::Transformer;
use futures::StreamExt;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch, Semaphore};

/// Called with (records read, bytes read) after each committed batch.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Receives each batch after it is committed to the lake (the warehouse loader).
#[async_trait]
pub trait CommitSink: Send + Sync {
    /// Handles one committed batch; an error stops the run (the batch stays committed in the lake).
    async fn committed(&self, commit: &BatchCommit) -> Result<(), String>;
}

/// A processed batch, ready to be made durable: what the pipeline made of source positions
/// `first..=last`.
#[derive(Debug)]
pub struct ProcessedBatch {
    /// First source position (inclusive).
    pub first: u64,
    /// Last source position (inclusive).
    pub last: u64,
    /// Encoded Parquet files, one or more per partition.
    pub files: Vec<EncodedFile>,
    /// Rejected records; `source.position` is the record's source position.
    pub dead_letters: Vec<DeadLetter>,
    /// `dt` of the dead-letter file.
    pub dead_letter_dt: String,
}

/// Makes processed batches durable in the lake instead of the default writer (data files, dead
/// letters, then the manifest, then catalog partitions). The Kinesis consumer commits through the
/// per-shard exactly-once protocol of `docs/delivery.md` with it.
#[async_trait]
pub trait BatchWriter: Send + Sync {
    /// Writes `batch` of `stream` (data, dead letters, manifest, catalog partitions) and returns
    /// its manifest. Called in source order, one batch at a time; an error stops the run.
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, String>;
}

/// The configured pipeline. Runs any number of sources, one after another.
pub struct Pipeline {
    options: PipelineOptions,
    schemas: HashMap<String, Arc<StreamSchema>>,
    transformer: Arc<Transformer>,
    lake: Lake,
    catalog: Arc<dyn Catalog>,
    sink: Option<Arc<dyn CommitSink>>,
    windows: Mutex<HashMap<String, Arc<Mutex<DedupWindow>>>>,
    /// One per batch being processed, shared by every stream this pipeline runs at once, so
    /// memory is bounded by `parallelism`, not by the number of streams.
    permits: Arc<Semaphore>,
}

impl Pipeline {
    /// A pipeline writing to `lake` and registering partitions in `catalog`.
    pub fn new(
        options: PipelineOptions,
        schemas: Vec<StreamSchema>,
        transformer: Transformer,
        lake: Lake,
        catalog: Arc<dyn Catalog>,
    ) -> Result<Self, PipelineError> {
        options.validate()?;
        Ok(Pipeline {
            permits: Arc::new(Semaphore::new(options.parallelism)),
            options,
            schemas: schemas
                .into_iter()
                .map(|s| (s.stream.clone(), Arc::new(s)))
                .collect(),
            transformer: Arc::new(transformer),
            lake,
            catalog,
            sink: None,
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// Sends every committed batch to `sink` as well.
    pub fn with_sink(mut self, sink: Arc<dyn CommitSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The lake written to.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The catalog partitions are registered in.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Creates or extends every stream's table in the catalog.
    pub async fn sync_catalog(&self) -> Result<Vec<(String, TableChange)>, PipelineError> {
        let mut names: Vec<&String> = self.schemas.keys().collect();
        names.sort();
        let mut out = Vec::new();
        for name in names {
            let change = self.catalog.sync_table(&self.schemas[name]).await?;
            out.push((name.clone(), change));
        }
        Ok(out)
    }

    fn schema(&self, stream: &str) -> Result<Arc<StreamSchema>, PipelineError> {
        self.schemas.get(stream).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.schemas.keys().map(String::as_str).collect();
            known.sort();
            PipelineError::UnknownStream(stream.to_string(), known.join(", "))
        })
    }

    fn window(&self, stream: &str) -> Result<Arc<Mutex<DedupWindow>>, PipelineError> {
        let mut windows = self
            .windows
            .lock()
            .map_err(|_| PipelineError::Internal("dedup window lock poisoned".into()))?;
        Ok(windows
            .entry(stream.to_string())
            .or_insert_with(|| Arc::new(Mutex::new(DedupWindow::new(self.options.dedup_window))))
            .clone())
    }

    /// Reads `source` to its end into `stream`'s table and returns the reconciled summary.
    pub async fn ingest(
        &self,
        stream: &str,
        source: Box<dyn RecordSource>,
        progress: Option<Progress>,
    ) -> Result<StreamSummary, PipelineError> {
        self.ingest_with_hook(stream, source, progress, None).await
    }

    /// [`Pipeline::ingest`], calling `on_commit` with each batch's commit record once the batch is
    /// in the lake, the catalog and the warehouse sink, before the next batch commits. Sources
    /// with positions of their own (Kinesis) commit those positions there; an error stops the run.
    pub async fn ingest_with_hook(
        &self,
        stream: &str,
        source: Box<dyn RecordSource>,
        progress: Option<Progress>,
        on_commit: Option<Arc<dyn CommitSink>>,
    ) -> Result<StreamSummary, PipelineError> {
        self.run(stream, source, progress, on_commit, None).await
    }

    /// [`Pipeline::ingest`], making each batch durable with `writer` instead of the default
    /// writer (which names files by the source's tag and numeric positions). The warehouse sink
    /// still receives each manifest `writer` returns.
    pub async fn ingest_with_writer(
        &self,
        stream: &str,
        source: Box<dyn RecordSource>,
        progress: Option<Progress>,
        writer: Arc<dyn BatchWriter>,
    ) -> Result<StreamSummary, PipelineError> {
        self.run(stream, source, progress, None, Some(writer)).await
    }

    async fn run(
        &self,
        stream: &str,
        mut source: Box<dyn RecordSource>,
        progress: Option<Progress>,
        on_commit: Option<Arc<dyn CommitSink>>,
        writer: Option<Arc<dyn BatchWriter>>,
    ) -> Result<StreamSummary, PipelineError> {
        let started = Instant::now();
        let schema = self.schema(stream)?;
        // The table must exist (and match the schema) before any of its partitions is registered.
        self.catalog.sync_table(&schema).await?;
        let source_name = source.name().to_string();
        let tag = source.tag().to_string();
        let dead_dt = chrono::DateTime::from_timestamp_millis(source.batch_time_ms())
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let (max_records, max_bytes) =
            (self.options.batch_max_records, self.options.batch_max_bytes);

        // Reader: a blocking thread cutting the source into batches, one batch ahead.
        let (tx, rx) = mpsc::channel::<std::io::Result<RawBatch>>(1);
        let reader = tokio::task::spawn_blocking(move || loop {
            match source.next_batch(max_records, max_bytes) {
                Ok(Some(batch)) => {
                    if tx.blocking_send(Ok(batch)).is_err() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        });

        let shared = Arc::new(Shared {
            stream: stream.to_string(),
            source_name: source_name.clone(),
            schema: schema.clone(),
            transformer: self.transformer.clone(),
            options: self.options.clone(),
            decoders: Mutex::new(Vec::new()),
            window: self.window(stream)?,
            turn: watch::channel(0).0,
        });
        let batches = futures::stream::unfold((rx, 0u64), |(mut rx, seq)| async move {
            let next = rx.recv().await?;
            Some(((seq, next), (rx, seq + 1)))
        });
        let permits = self.permits.clone();
        let processed = batches
            // Each batch takes a permit before its task starts, in batch order: a batch waiting
            // for its dedup turn holds a permit only if its predecessor got one first, so the
            // streams sharing the permits cannot block each other for good.
            .then(move |(seq, raw)| {
                let permits = permits.clone();
                async move { (seq, raw, permits.acquire_owned().await) }
            })
            .map(|(seq, raw, permit)| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _permit = permit
                        .map_err(|_| PipelineError::Internal("batch permits closed".into()))?;
                    let raw = raw.map_err(|error| PipelineError::Read {
                        source_name: shared.source_name.clone(),
                        error,
                    })?;
                    shared.process(seq, raw).await
                })
            })
            .buffered(self.options.parallelism);
        let mut processed = std::pin::pin!(processed);

        let mut summary = StreamSummary {
            stream: stream.to_string(),
            sources: vec![source_name.clone()],
            ..Default::default()
        };
        let mut known_partitions = BTreeSet::new();
        crate::metrics::register_stream(stream);
        while let Some(joined) = processed.next().await {
            let batch = joined
                .map_err(|e| PipelineError::Internal(format!("batch task failed: {e}")))??;
            let mut reasons: Vec<String> = batch.dead.iter().map(|d| d.reason.clone()).collect();
            let mut commit_timer = crate::metrics::commit_timer(stream);
            let commit = match &writer {
                Some(writer) => {
                    let (first, last) = (batch.first, batch.last);
                    writer
                        .write(
                            stream,
                            ProcessedBatch {
                                first,
                                last,
                                files: batch.files,
                                dead_letters: batch.dead,
                                dead_letter_dt: dead_dt.clone(),
                            },
                        )
                        .await
                        .map_err(|message| PipelineError::Delivery {
                            source_name: source_name.clone(),
                            first,
                            last,
                            message,
                        })?
                }
                None => {
                    let commit = self
                        .lake
                        .write_batch(
                            stream,
                            &BatchId::new(&tag, batch.first, batch.last),
                            BatchSource {
                                name: &source_name,
                                first: batch.first,
                                last: batch.last,
                            },
                            batch.files,
                            &batch.dead,
                            &dead_dt,
                        )
                        .await?;
                    let new: Vec<_> = commit
                        .files
                        .iter()
                        .map(|f| f.partition.clone())
                        .filter(|p| known_partitions.insert(p.clone()))
                        .collect();
                    if !new.is_empty() {
                        self.catalog.add_partitions(stream, &new).await?;
                    }
                    commit
                }
            };
            commit_timer.written();
            if let Some(sink) = &self.sink {
                sink.committed(&commit)
                    .await
                    .map_err(|message| PipelineError::Load {
                        batch: commit.batch_id.to_string(),
                        message,
                    })?;
            }
            if let Some(hook) = &on_commit {
                hook.committed(&commit)
                    .await
                    .map_err(|message| PipelineError::CommitHook {
                        batch: commit.batch_id.to_string(),
                        message,
                    })?;
            }
            summary.read += batch.records;
            summary.bytes_read += batch.bytes;
            summary.written += commit.rows();
            summary.duplicates += batch.duplicates;
            summary.dead_lettered += commit.dead_letters;
            crate::metrics::batch_committed(
                stream,
                batch.records,
                commit.rows(),
                batch.duplicates,
                0,
                &reasons,
            );
            for reason in reasons.drain(..) {
                *summary.dead_letter_reasons.entry(reason).or_default() += 1;
            }
            summary.batches += 1;
            summary.files += commit.files.len() as u64;
            summary.parquet_bytes += commit.files.iter().map(|f| f.bytes).sum::<u64>();
            summary
                .partitions
                .extend(commit.files.iter().map(|f| f.partition.path()));
            tracing::debug!(stream, batch = %commit.batch_id, rows = commit.rows(), dead = commit.dead_letters, "batch committed");
            if let Some(p) = &progress {
                p(summary.read, summary.bytes_read);
            }
        }
        reader
            .await
            .map_err(|e| PipelineError::Internal(format!("reader task failed: {e}")))?;
        summary.elapsed = started.elapsed();
        if !summary.reconciles() {
            return Err(PipelineError::Reconcile {
                stream: stream.to_string(),
                read: summary.read,
                written: summary.written,
                duplicates: summary.duplicates,
                dead: summary.dead_lettered,
            });
        }
        Ok(summary)
    }
}

/// State shared by the tasks of one run.
struct Shared {
    stream: String,
    source_name: String,
    schema: Arc<StreamSchema>,
    transformer: Arc<Transformer>,
    options: PipelineOptions,
    decoders: Mutex<Vec<Decoder>>,
    window: Arc<Mutex<DedupWindow>>,
    /// Sequence number of the batch whose turn it is to pass the dedup window.
    turn: watch::Sender<u64>,
}

/// A batch ready to commit.
struct Processed {
    first: u64,
    last: u64,
    records: u64,
    bytes: u64,
    duplicates: u64,
    files: Vec<EncodedFile>,
    dead: Vec<DeadLetter>,
}

/// Passes the dedup turn to the next batch when dropped, also when a batch fails, so no task
/// waits forever.
struct Turn<'a> {
    tx: &'a watch::Sender<u64>,
    seq: u64,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.tx.send_modify(|v| *v = (*v).max(self.seq + 1));
    }
}

impl Shared {
    async fn process(&self, seq: u64, raw: RawBatch) -> Result<Processed, PipelineError> {
        let read_err = |error| PipelineError::Read {
            source_name: self.source_name.clone(),
            error,
        };
        let turn = Turn {
            tx: &self.turn,
            seq,
        };
        let (first, last) = match (raw.positions.first(), raw.positions.last()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => return Err(read_err(std::io::Error::other("empty batch"))),
        };
        let mut clock = crate::metrics::StageClock::new(&self.stream);
        let decoded = {
            let mut decoder = self.take_decoder()?;
            let result = decoder.decode((0..raw.len()).map(|i| raw.record(i)));
            self.put_decoder(decoder)?;
            result?
        };
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let dead: Vec<DeadLetter> = decoded
            .rejects
            .iter()
            .map(|r| {
                let i = r.index as usize;
                let position = raw.positions.get(i).copied().unwrap_or_default();
                let source = DeadLetterSource {
                    name: self.source_name.clone(),
                    position: position.to_string(),
                };
                DeadLetter::new(
                    &self.stream,
                    r.reason.as_str(),
                    r.message.clone(),
                    source,
                    now.clone(),
                    raw.record(i),
                )
            })
            .collect();
        // The original bytes are not needed past here (dead letters copied theirs): free them
        // before the transform, which is where a batch needs the most memory.
        let (records, bytes) = (raw.len() as u64, raw.data_len());
        drop(raw);
        clock.lap(crate::metrics::Stage::Decode);
        let accepted = decoded.batch.num_rows() as u64;
        let transformed = if accepted > 0 {
            self.transformer
                .transform(&self.stream, decoded.batch)
                .await?
        } else {
            Vec::new()
        };
        let after_sql: u64 = transformed.iter().map(|b| b.num_rows() as u64).sum();
        clock.lap(crate::metrics::Stage::Transform);

        // Cross-batch dedup, strictly in batch order.
        let mut rx = self.turn.subscribe();
        rx.wait_for(|v| *v >= seq)
            .await
            .map_err(|_| PipelineError::Internal("dedup turn channel closed".into()))?;
        let (kept, cross) = {
            let mut window = self
                .window
                .lock()
                .map_err(|_| PipelineError::Internal("dedup window lock poisoned".into()))?;
            let mut kept: Vec<RecordBatch> = Vec::with_capacity(transformed.len());
            let mut dropped = 0;
            for b in transformed {
                let (k, d) = window.apply(b).map_err(etl_lake::LakeError::from)?;
                dropped += d;
                kept.push(k);
            }
            (kept, dropped)
        };
        drop(turn);
        clock.mark();

        let files = encode_partitions(
            &self.stream,
            &self.schema.lake_arrow_schema(),
            &kept,
            &self.options.parquet,
        )?;
        clock.lap(crate::metrics::Stage::Encode);
        Ok(Processed {
            first,
            last,
            records,
            bytes,
            duplicates: (accepted - after_sql) + cross,
            files,
            dead,
        })
    }

    fn take_decoder(&self) -> Result<Decoder, PipelineError> {
        let mut pool = self
            .decoders
            .lock()
            .map_err(|_| PipelineError::Internal("decoder pool lock poisoned".into()))?;
        Ok(pool.pop().unwrap_or_else(|| {
            Decoder::new(
                self.schema.clone(),
                DecodeOptions {
                    max_record_bytes: self.options.max_record_bytes,
                },
            )
        }))
    }

    fn put_decoder(&self, decoder: Decoder) -> Result<(), PipelineError> {
        let mut pool = self
            .decoders
            .lock()
            .map_err(|_| PipelineError::Internal("decoder pool lock poisoned".into()))?;
        pool.push(decoder);
        Ok(())
    }
}
