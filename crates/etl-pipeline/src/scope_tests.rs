//! Partition-scoped dedup windows (`Checkpoint::dedup_scope`) and `ShardFatal` commits: each
//! partition has its own window, started from its seed and replaced when its epoch grows; a batch
//! whose commit is `ShardFatal` is dropped (not counted) and the run goes on.

use crate::source::{
    Checkpoint, DedupScope, Lines, RawBatch, RecordSource, SourceBatch, SourceError,
};
use crate::tests::{key, small_batches};
use crate::writer::{BatchWriter, CommitError, ErrorKind, LakeWriter, ProcessedBatch};
use crate::Pipeline;
use async_trait::async_trait;
use etl_generate::{Generator, GeneratorConfig};
use etl_lake::catalog::FileCatalog;
use etl_lake::{BatchCommit, Lake};
use etl_transform::Transformer;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
struct Scoped {
    lines: Vec<u64>,
    scope: DedupScope,
}

impl Checkpoint for Scoped {
    fn position(&self, i: usize) -> String {
        self.lines[i].to_string()
    }
    fn range(&self) -> (String, String) {
        (
            self.lines[0].to_string(),
            self.lines[self.lines.len() - 1].to_string(),
        )
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        Box::new(Lines(self.lines))
    }
    fn dedup_scope(&self) -> Option<DedupScope> {
        Some(self.scope.clone())
    }
}

struct Batches(VecDeque<SourceBatch>);

#[async_trait]
impl RecordSource for Batches {
    fn name(&self) -> &str {
        "scoped"
    }
    fn tag(&self) -> &str {
        "scoped"
    }
    fn batch_time_ms(&self) -> i64 {
        0
    }
    async fn next_batch(&mut self, _: usize, _: usize) -> Result<Option<SourceBatch>, SourceError> {
        Ok(self.0.pop_front())
    }
}

/// Commits through the lake writer, except batches of partition `fenced` (ShardFatal).
struct FencingWriter {
    inner: LakeWriter,
    refused: Mutex<u32>,
}

#[async_trait]
impl BatchWriter for FencingWriter {
    async fn write(&self, stream: &str, batch: ProcessedBatch) -> Result<BatchCommit, CommitError> {
        if batch
            .checkpoint
            .dedup_scope()
            .is_some_and(|s| &*s.key == "fenced")
        {
            *self.refused.lock().unwrap() += 1;
            return Err(CommitError::new(
                ErrorKind::ShardFatal,
                "fenced: another writer",
            ));
        }
        self.inner.write(stream, batch).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_partition_has_its_own_seeded_window_and_a_shard_fatal_batch_is_dropped() {
    let mut generator = Generator::new(GeneratorConfig {
        seed: 5,
        events: 40,
        call_share: 0.0,
        duplicate_rate: 0.0,
        malformed_rate: 0.0,
        ..GeneratorConfig::default()
    })
    .unwrap();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    while let Some((_, _, line)) = generator.next_record() {
        lines.push(line.to_vec());
    }
    let id = |i: usize| -> String {
        let v: serde_json::Value = serde_json::from_slice(&lines[i]).unwrap();
        v["event_id"].as_str().unwrap().to_string()
    };
    let batch =
        |n: u64, records: std::ops::Range<usize>, key: &str, epoch: u64, seed: Vec<String>| {
            let mut raw = RawBatch::default();
            for i in records.clone() {
                let start = raw.data.len();
                raw.data.extend_from_slice(&lines[i]);
                raw.ranges.push((start, raw.data.len()));
            }
            SourceBatch {
                records: raw,
                checkpoint: Box::new(Scoped {
                    lines: records.map(|i| n * 1000 + i as u64).collect(),
                    scope: DedupScope {
                        key: key.into(),
                        epoch,
                        seed: Arc::new(seed),
                        share: 1,
                    },
                }),
            }
        };
    let source = Batches(VecDeque::from([
        // Seeded with event 0: its copy is dropped.
        batch(1, 0..5, "p", 1, vec![id(0)]),
        // Events 3 and 4 passed p's window in the batch before.
        batch(2, 3..8, "p", 1, vec![id(0)]),
        // Another partition has its own window: 3 and 4 pass.
        batch(3, 3..5, "q", 1, vec![]),
        // Refused (ShardFatal): dropped, the run goes on.
        batch(4, 10..15, "fenced", 1, vec![]),
        // A new stint on p: a fresh (empty) window, so 5 and 6 pass again.
        batch(5, 5..7, "p", 2, vec![]),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let schemas = etl_schema::embedded().unwrap();
    let transformer = Transformer::new(&schemas, etl_transform::embedded_sql(), key()).unwrap();
    let lake = Lake::open(tmp.path().to_str().unwrap()).unwrap();
    let catalog = Arc::new(FileCatalog::new(lake.clone()));
    let pipeline = Pipeline::new(
        small_batches(),
        schemas,
        transformer,
        lake.clone(),
        catalog.clone(),
    )
    .unwrap();
    let writer = Arc::new(FencingWriter {
        inner: LakeWriter::new(lake, catalog, "scoped", "scoped"),
        refused: Mutex::new(0),
    });
    let summary = pipeline
        .ingest_with_writer("app_events", Box::new(source), None, writer.clone())
        .await
        .unwrap();
    assert_eq!(*writer.refused.lock().unwrap(), 1);
    assert_eq!(summary.batches, 4, "{summary:?}");
    assert_eq!(
        summary.read,
        5 + 5 + 2 + 2,
        "the refused batch is not counted"
    );
    assert_eq!(summary.duplicates, 1 + 2, "{summary:?}");
    assert_eq!(
        summary.written + summary.filtered,
        4 + 3 + 2 + 2,
        "{summary:?}"
    );
    assert!(summary.reconciles());
}
