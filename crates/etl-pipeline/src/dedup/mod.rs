//! Dropping events whose `event_id` was already seen in an earlier batch.
//!
//! A batch passes the window in three steps so that only the middle one runs in batch order:
//! [`DedupWindow::digests`] hashes its ids (any order, in parallel), [`DedupWindow::admit`]
//! looks them up and remembers them (in batch order), and [`keep_rows`] drops the repeats
//! (any order again).

mod table;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::error::ArrowError;
use etl_transform::id_digest;
use std::collections::VecDeque;
use table::DigestTable;

/// The most recent `capacity` event ids (as 128-bit hashes: a false match, which would drop a
/// real event, has a probability around 10^-26). Oldest ids are forgotten first.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    seen: DigestTable,
    order: VecDeque<u128>,
}

/// Which rows of a batch passed the window.
#[derive(Debug)]
pub struct Admitted {
    /// One flag per row (true: keep); empty when every row is kept.
    keep: Vec<bool>,
    /// Rows whose id the window had seen.
    pub dropped: u64,
}

impl DedupWindow {
    /// A window remembering `capacity` ids; 0 remembers none.
    pub fn new(capacity: usize) -> Self {
        Self::with_reserve(capacity, 1 << 20)
    }

    /// A window remembering `capacity` ids that reserves room for `reserve` at first (windows
    /// of partitions, many per process, grow as they fill).
    pub fn with_reserve(capacity: usize, reserve: usize) -> Self {
        let room = capacity.min(reserve);
        DedupWindow {
            capacity,
            seen: DigestTable::with_capacity(room),
            order: VecDeque::with_capacity(room),
        }
    }

    /// Remembers `ids` (oldest first) as if they had passed the window; beyond `capacity` the
    /// oldest are forgotten.
    pub fn seed<'a>(&mut self, ids: impl IntoIterator<Item = &'a str>) {
        if self.capacity == 0 {
            return;
        }
        for id in ids {
            let h = id_digest(id);
            if self.seen.insert(h) {
                self.order.push_back(h);
            }
        }
        self.forget_oldest();
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The digests of `batch`'s `event_id` column, in row order (needs no window: run it before
    /// the batch's turn).
    pub fn digests(batch: &RecordBatch) -> Result<Vec<u128>, ArrowError> {
        let ids = batch
            .column_by_name("event_id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| {
                ArrowError::SchemaError("dedup needs a text column `event_id`".into())
            })?;
        Ok(ids
            .iter()
            .map(|id| id_digest(id.unwrap_or_default()))
            .collect())
    }

    /// Looks up the ids of one batch (their [`DedupWindow::digests`]) and remembers the new
    /// ones. Ids within one batch are assumed distinct already.
    pub fn admit(&mut self, digests: &[u128]) -> Admitted {
        if self.capacity == 0 || digests.is_empty() {
            return Admitted {
                keep: Vec::new(),
                dropped: 0,
            };
        }
        let mut keep = Vec::with_capacity(digests.len());
        self.seen.insert_all(digests, &mut keep);
        let mut dropped = 0;
        for (&digest, &new) in digests.iter().zip(&keep) {
            if new {
                self.order.push_back(digest);
            } else {
                dropped += 1;
            }
        }
        self.forget_oldest();
        if dropped == 0 {
            keep.clear();
        }
        Admitted { keep, dropped }
    }

    fn forget_oldest(&mut self) {
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(old);
            }
        }
    }
}

/// The rows of `batch` that passed the window.
pub fn keep_rows(batch: RecordBatch, admitted: Admitted) -> Result<RecordBatch, ArrowError> {
    if admitted.dropped == 0 {
        return Ok(batch);
    }
    filter_record_batch(&batch, &BooleanArray::from(admitted.keep))
}
