//! Running one stream's records through the pipeline.

use crate::dedup::{keep_rows, Admitted, DedupWindow};
use crate::source::{Checkpoint, DedupScope, RawBatch, RecordSource, SourceBatch, SourceError};
use crate::writer::{BatchWriter, ErrorKind, LakeWriter, ProcessedBatch};
use crate::{PipelineError, PipelineOptions, StreamSummary};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use etl_decode::{DecodeOptions, Decoder};
use etl_lake::catalog::{Catalog, TableChange};
use etl_lake::{
    encode_partitions, DeadLetter, DeadLetterSource, EncodedFile, Lake, LakeError, ParquetOptions,
};
use etl_schema::StreamSchema;
use etl_transform::{Transformed, Transformer};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{mpsc, watch, Semaphore};

/// Called with (records read, bytes read) after each committed batch.
pub type Progress = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Encodes a batch's rows into Parquet files, one or more per partition (the lake's
/// `encode_partitions`; tests swap in a broken one to prove the counts catch it).
pub(crate) type EncodeFn = Arc<
    dyn Fn(&str, &SchemaRef, &[RecordBatch], &ParquetOptions) -> Result<Vec<EncodedFile>, LakeError>
        + Send
        + Sync,
>;

/// The configured pipeline. Runs any number of sources, one after another.
pub struct Pipeline {
    options: PipelineOptions,
    schemas: HashMap<String, Arc<StreamSchema>>,
    transformer: Arc<Transformer>,
    lake: Lake,
    catalog: Arc<dyn Catalog>,
    encode: EncodeFn,
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
            encode: Arc::new(encode_partitions),
            windows: Mutex::new(HashMap::new()),
        })
    }

    /// Encodes with `encode` instead of the lake's encoder (tests of the reconciliation).
    #[cfg(test)]
    pub(crate) fn with_encoder(mut self, encode: EncodeFn) -> Self {
        self.encode = encode;
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

    /// Reads `source` (one whose checkpoints are line numbers: files, stdin, replays) to its
    /// end into `stream`'s table with the [`LakeWriter`] and returns the reconciled summary.
    pub async fn ingest(
        &self,
        stream: &str,
        source: Box<dyn RecordSource>,
        progress: Option<Progress>,
    ) -> Result<StreamSummary, PipelineError> {
        let writer = Arc::new(LakeWriter::new(
            self.lake.clone(),
            self.catalog.clone(),
            source.tag(),
            source.name(),
        ));
        self.ingest_with_writer(stream, source, progress, writer)
            .await
    }

    /// Reads `source` to its end into `stream`'s table, making each batch durable (with its
    /// checkpoint) through `writer`, the source's own writer.
    pub async fn ingest_with_writer(
        &self,
        stream: &str,
        mut source: Box<dyn RecordSource>,
        progress: Option<Progress>,
        writer: Arc<dyn BatchWriter>,
    ) -> Result<StreamSummary, PipelineError> {
        let started = Instant::now();
        let schema = self.schema(stream)?;
        let schema_version = schema.version;
        // The table must exist (and match the schema) before any of its partitions is registered.
        self.catalog.sync_table(&schema).await?;
        let source_name = source.name().to_string();
        let batch_time_ms = source.batch_time_ms();
        let dead_dt = chrono::DateTime::from_timestamp_millis(batch_time_ms)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let (max_records, max_bytes) =
            (self.options.batch_max_records, self.options.batch_max_bytes);

        // Reader: a task cutting the source into batches, one batch ahead.
        let (tx, rx) = mpsc::channel::<Result<SourceBatch, SourceError>>(1);
        let reader = tokio::spawn(async move {
            loop {
                match source.next_batch(max_records, max_bytes).await {
                    Ok(Some(batch)) => {
                        if tx.send(Ok(batch)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
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
            scoped: Mutex::new(HashMap::new()),
            encode: self.encode.clone(),
            turn: watch::channel(0).0,
            default_arrival_ms: batch_time_ms,
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
            .map(move |(seq, raw, permit)| {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _permit = permit
                        .map_err(|_| PipelineError::Internal("batch permits closed".into()))?;
                    shared.process(seq, raw?).await
                })
            })
            .buffered(self.options.parallelism);
        // A task of its own drives the batches, so new ones start as permits free up also while
        // a batch is being committed below (committing in this loop kept the next batch from
        // starting until the commit had finished). Commits stay in batch order: one channel,
        // one committer.
        type Joined = Result<Result<Processed, PipelineError>, tokio::task::JoinError>;
        let (done_tx, mut done_rx) = mpsc::channel::<Joined>(1);
        let driver = tokio::spawn(async move {
            let mut processed = std::pin::pin!(processed);
            while let Some(joined) = processed.next().await {
                if done_tx.send(joined).await.is_err() {
                    return; // the committer stopped (an error): stop starting batches
                }
            }
        });

        let mut summary = StreamSummary {
            stream: stream.to_string(),
            sources: vec![source_name.clone()],
            ..Default::default()
        };
        crate::metrics::register_stream(stream);
        while let Some(joined) = done_rx.recv().await {
            let batch = joined
                .map_err(|e| PipelineError::Internal(format!("batch task failed: {e}")))??;
            let mut reasons: Vec<String> = batch.dead.iter().map(|d| d.reason.clone()).collect();
            let mut commit_timer = crate::metrics::commit_timer(stream);
            let (first, last) = batch.checkpoint.range();
            let written = writer
                .write(
                    stream,
                    ProcessedBatch {
                        files: batch.files,
                        dead_letters: batch.dead,
                        dead_letter_dt: dead_dt.clone(),
                        checkpoint: batch.checkpoint,
                        schema_version,
                    },
                )
                .await;
            let commit = match written {
                Ok(commit) => commit,
                // The partition cannot go on in this process (its lease moved, another writer
                // committed it): the batch is not committed, so it is not counted as read
                // either; the partition's new owner reads it again. The other partitions go on.
                Err(error) if error.kind == ErrorKind::ShardFatal => {
                    tracing::warn!(stream, source = source_name.as_str(), first, last, %error, "batch dropped: its partition cannot go on in this process; the others go on");
                    continue;
                }
                Err(error) => {
                    return Err(PipelineError::Commit {
                        source_name: source_name.clone(),
                        first,
                        last,
                        error,
                    })
                }
            };
            commit_timer.written();
            summary.read += batch.records;
            summary.bytes_read += batch.bytes;
            summary.written += commit.rows();
            summary.duplicates += batch.duplicates;
            summary.filtered += batch.filtered;
            summary.dead_lettered += commit.dead_letters;
            crate::metrics::batch_committed(
                stream,
                batch.records,
                commit.rows(),
                batch.duplicates,
                batch.filtered,
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
        driver
            .await
            .map_err(|e| PipelineError::Internal(format!("batch driver task failed: {e}")))?;
        reader
            .await
            .map_err(|e| PipelineError::Internal(format!("reader task failed: {e}")))?;
        summary.elapsed = started.elapsed();
        // Each batch was reconciled before its commit; this catches a writer whose manifest
        // does not list what it was given.
        if !summary.reconciles() {
            return Err(PipelineError::Reconcile {
                stream: stream.to_string(),
                source_name,
                first: "(first)".into(),
                last: "(last)".into(),
                read: summary.read,
                written: summary.written,
                duplicates: summary.duplicates,
                filtered: summary.filtered,
                dead: summary.dead_lettered,
            });
        }
        Ok(summary)
    }
}

/// Ids a partition's window makes room for at first (it grows up to `dedup_window`).
const SCOPED_RESERVE: usize = 1 << 14;

fn admit_all(window: &mut DedupWindow, digests: &[Vec<u128>]) -> Vec<Admitted> {
    digests.iter().map(|d| window.admit(d)).collect()
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
    /// The windows of partitions that name a [`DedupScope`], with the epoch each was made for.
    scoped: Mutex<HashMap<Arc<str>, (u64, DedupWindow)>>,
    encode: EncodeFn,
    /// Sequence number of the batch whose turn it is to pass the dedup window.
    turn: watch::Sender<u64>,
    /// Arrival time of records whose batch carries none (the source's batch time).
    default_arrival_ms: i64,
}

/// A batch ready to commit.
struct Processed {
    checkpoint: Box<dyn Checkpoint>,
    records: u64,
    bytes: u64,
    duplicates: u64,
    filtered: u64,
    files: Vec<EncodedFile>,
    dead: Vec<DeadLetter>,
}

impl Processed {
    /// Every record of the batch is in exactly one outcome, each counted where it happened:
    /// rows in the encoded files, dedup drops, transform drops, dead letters.
    fn reconcile(&self, stream: &str, source_name: &str) -> Result<(), PipelineError> {
        let written: u64 = self.files.iter().map(|f| f.rows as u64).sum();
        let dead = self.dead.len() as u64;
        if self.records == written + self.duplicates + self.filtered + dead {
            return Ok(());
        }
        let (first, last) = self.checkpoint.range();
        Err(PipelineError::Reconcile {
            stream: stream.to_string(),
            source_name: source_name.to_string(),
            first,
            last,
            read: self.records,
            written,
            duplicates: self.duplicates,
            filtered: self.filtered,
            dead,
        })
    }
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
    async fn process(&self, seq: u64, batch: SourceBatch) -> Result<Processed, PipelineError> {
        let turn = Turn {
            tx: &self.turn,
            seq,
        };
        let SourceBatch {
            records: raw,
            checkpoint,
        } = batch;
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
                let source = DeadLetterSource {
                    name: self.source_name.clone(),
                    position: checkpoint.position(i),
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
        let arrivals = self.arrivals(&raw, &decoded.rejects, decoded.batch.num_rows())?;
        // The original bytes are not needed past here (dead letters copied theirs): free them
        // before the transform, which is where a batch needs the most memory.
        let (records, bytes) = (raw.len() as u64, raw.data_len());
        drop(raw);
        clock.lap(crate::metrics::Stage::Decode);
        let transformed = if decoded.batch.num_rows() > 0 {
            let input = Transformer::with_arrivals(decoded.batch, arrivals)?;
            self.transformer.transform(&self.stream, input).await?
        } else {
            Transformed {
                batches: Vec::new(),
                duplicates: 0,
                filtered: 0,
            }
        };
        clock.lap(crate::metrics::Stage::Transform);

        // Cross-batch dedup: only the window's lookups wait for the batch's turn (batch order);
        // hashing the ids before and dropping the repeats after run in parallel.
        let digests = if self.options.dedup_window > 0 {
            let digests: Result<Vec<_>, _> = transformed
                .batches
                .iter()
                .map(DedupWindow::digests)
                .collect();
            digests.map_err(etl_lake::LakeError::from)?
        } else {
            vec![Vec::new(); transformed.batches.len()]
        };
        let mut rx = self.turn.subscribe();
        rx.wait_for(|v| *v >= seq)
            .await
            .map_err(|_| PipelineError::Internal("dedup turn channel closed".into()))?;
        let admitted = self.dedup(checkpoint.dedup_scope().as_ref(), &digests)?;
        drop(turn);
        let mut cross = 0;
        let mut kept = Vec::with_capacity(admitted.len());
        for (batch, admitted) in transformed.batches.into_iter().zip(admitted) {
            cross += admitted.dropped;
            kept.push(keep_rows(batch, admitted).map_err(etl_lake::LakeError::from)?);
        }
        clock.mark();

        let files = (self.encode)(
            &self.stream,
            &self.schema.lake_arrow_schema(),
            &kept,
            &self.options.parquet,
        )?;
        clock.lap(crate::metrics::Stage::Encode);
        let batch = Processed {
            checkpoint,
            records,
            bytes,
            duplicates: transformed.duplicates + cross,
            filtered: transformed.filtered,
            files,
            dead,
        };
        batch.reconcile(&self.stream, &self.source_name)?;
        Ok(batch)
    }

    /// The arrival time of each decoded row: the batch's arrivals of the records that were not
    /// rejected (rows are the accepted records in order), or the source's batch time.
    fn arrivals(
        &self,
        raw: &RawBatch,
        rejects: &[etl_decode::Reject],
        rows: usize,
    ) -> Result<Vec<Option<i64>>, PipelineError> {
        if raw.arrivals.is_empty() {
            return Ok(vec![Some(self.default_arrival_ms); rows]);
        }
        let mut rejected: Vec<usize> = rejects.iter().map(|r| r.index as usize).collect();
        rejected.sort_unstable();
        let out: Vec<Option<i64>> = (0..raw.len())
            .filter(|i| rejected.binary_search(i).is_err())
            .map(|i| raw.arrivals.get(i).copied().flatten())
            .collect();
        if out.len() != rows {
            return Err(PipelineError::Internal(format!(
                "{} decoded rows for {} accepted records",
                rows,
                out.len()
            )));
        }
        Ok(out)
    }

    /// Passes the ids of a batch's record batches (`digests`, one list per record batch) through
    /// the stream's window, or the window of the batch's partition (made afresh from the
    /// scope's seed when the scope's epoch is newer than the window).
    fn dedup(
        &self,
        scope: Option<&DedupScope>,
        digests: &[Vec<u128>],
    ) -> Result<Vec<Admitted>, PipelineError> {
        let Some(scope) = scope else {
            let mut window = self
                .window
                .lock()
                .map_err(|_| PipelineError::Internal("dedup window lock poisoned".into()))?;
            return Ok(admit_all(&mut window, digests));
        };
        let fresh = || {
            let capacity = self.options.dedup_window / scope.share.max(1);
            let mut window = DedupWindow::with_reserve(capacity, SCOPED_RESERVE);
            window.seed(scope.seed.iter().map(String::as_str));
            window
        };
        let mut windows = self
            .scoped
            .lock()
            .map_err(|_| PipelineError::Internal("dedup window lock poisoned".into()))?;
        let entry = windows
            .entry(scope.key.clone())
            .or_insert_with(|| (scope.epoch, fresh()));
        if entry.0 < scope.epoch {
            *entry = (scope.epoch, fresh());
        }
        if entry.0 > scope.epoch {
            // A batch of an earlier stint on this partition: it will not be committed (the
            // source refuses it), and its ids must not enter the current window.
            return Ok(admit_all(&mut DedupWindow::new(0), digests));
        }
        Ok(admit_all(&mut entry.1, digests))
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
