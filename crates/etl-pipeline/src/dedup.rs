//! Dropping events whose `event_id` was already seen in an earlier batch.

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use etl_transform::{id_digest, id_set, IdSet};
use std::collections::VecDeque;

/// The most recent `capacity` event ids (as 128-bit hashes: a false match, which would drop a
/// real event, has a probability around 10^-26). Oldest ids are forgotten first.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    seen: IdSet,
    order: VecDeque<u128>,
}

impl DedupWindow {
    /// A window remembering `capacity` ids; 0 remembers none.
    pub fn new(capacity: usize) -> Self {
        DedupWindow {
            capacity,
            seen: id_set(capacity.min(1 << 20)),
            order: VecDeque::new(),
        }
    }

    /// A window remembering `capacity` ids that reserves room for `reserve` at first (windows
    /// of partitions, many per process, grow as they fill).
    pub fn with_reserve(capacity: usize, reserve: usize) -> Self {
        DedupWindow {
            capacity,
            seen: id_set(capacity.min(reserve)),
            order: VecDeque::new(),
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
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }

    /// Number of ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Removes rows whose `event_id` is in the window and remembers the others. Returns the kept
    /// rows and how many were dropped. Rows within `batch` are assumed distinct already.
    pub fn apply(
        &mut self,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, u64), arrow::error::ArrowError> {
        if self.capacity == 0 || batch.num_rows() == 0 {
            return Ok((batch, 0));
        }
        let ids = batch
            .column_by_name("event_id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| {
                arrow::error::ArrowError::SchemaError("dedup needs a text column `event_id`".into())
            })?;
        let mut keep = Vec::with_capacity(ids.len());
        let mut dropped = 0;
        for id in ids.iter() {
            let h = id_digest(id.unwrap_or_default());
            if self.seen.insert(h) {
                self.order.push_back(h);
                keep.push(true);
            } else {
                dropped += 1;
                keep.push(false);
            }
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if dropped == 0 {
            return Ok((batch, 0));
        }
        Ok((
            filter_record_batch(&batch, &BooleanArray::from(keep))?,
            dropped,
        ))
    }
}
