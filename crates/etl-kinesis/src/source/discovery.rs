//! Shard discovery (which shards may be read now, each recovered from its commit log before
//! its reader starts) and shard ends (a shard read to its end is marked finished once its last
//! batch is committed, so its children may be read).

use super::{ShardPosition, Shared};
use crate::positions::RecordPosition;
use crate::reader::{read_shard, StartPosition};
use crate::shards::{list_shards, readable_shards, ShardInfo};
use crate::KinesisError;
use std::collections::HashSet;
use std::sync::Arc;

impl Shared {
    /// Lists shards and starts a reader for every shard that may be read now, after recovering
    /// its commit log (the highest record rolled forward; the shard resumes after it).
    pub(super) async fn discover(self: &Arc<Self>, initial: bool) -> Result<(), KinesisError> {
        let shards = list_shards(&self.client, &self.stream).await?;
        if self.leases.is_some() {
            return self.discover_leased(&shards).await;
        }
        let ready: Vec<ShardInfo> = {
            let mut state = self.lock();
            let finished: HashSet<String> = state
                .committed
                .values()
                .filter(|p| p.finished)
                .map(|p| p.shard_id.clone())
                .collect();
            // Resharding fix (issue 3, kinesis_resilience): a shard read to its end whose end is
            // not committed yet has left `reading` but is not `finished`; it must not count as
            // readable, or a discovery pass in between starts a second reader on it and its
            // uncommitted records are handed on twice.
            let busy: HashSet<String> = state
                .reading
                .iter()
                .chain(&state.finished_unmarked)
                .chain(state.finish_ready.iter())
                .cloned()
                .collect();
            let ready: Vec<ShardInfo> = readable_shards(&shards, &finished, &busy)
                .into_iter()
                .cloned()
                .collect();
            for shard in &ready {
                state.reading.insert(shard.shard_id.clone());
            }
            state.settled = ready.is_empty();
            ready
        };
        for (i, shard) in ready.iter().enumerate() {
            let epoch = self.next_epoch();
            if let Err(e) = self.start_shard(shard, epoch, initial).await {
                // Not started: let a later pass try these shards again.
                let mut state = self.lock();
                for s in &ready[i..] {
                    state.reading.remove(&s.shard_id);
                }
                state.settled = false;
                return Err(e);
            }
        }
        Ok(())
    }

    /// With leases: notes which shards may be read now (the lease loop takes leases of those
    /// and starts their readers). Shard ends committed by other processes are loaded first, so
    /// children are leased only after their parents are fully committed.
    async fn discover_leased(&self, shards: &[ShardInfo]) -> Result<(), KinesisError> {
        let stored = self.store.load(&self.stream).await?;
        let mut state = self.lock();
        for (shard, position) in stored.into_iter().filter(|(_, p)| p.finished) {
            state.committed.insert(shard, position);
        }
        let finished: HashSet<String> = state
            .committed
            .values()
            .filter(|p| p.finished)
            .map(|p| p.shard_id.clone())
            .collect();
        state.readable = readable_shards(shards, &finished, &HashSet::new())
            .into_iter()
            .cloned()
            .collect();
        state.settled = true;
        Ok(())
    }

    /// Recovers `shard`'s commit log (the highest record rolled forward), seeds its dedup
    /// window with leases, and starts its reader for stint `epoch` after the last committed
    /// position.
    pub(super) async fn start_shard(
        self: &Arc<Self>,
        shard: &ShardInfo,
        epoch: u64,
        initial: bool,
    ) -> Result<(), KinesisError> {
        let delivery = self.delivery(&shard.shard_id);
        let resume = delivery.recover().await?;
        let seed = match &self.leases {
            Some(rt) => {
                let batches = rt.leasing.options.dedup_seed_batches;
                Some(delivery.recent_values(&resume, batches, "event_id").await?)
            }
            None => None,
        };
        let logged = match &resume.after {
            Some(text) => Some(RecordPosition::from_text(text).ok_or_else(|| {
                KinesisError::Positions(format!(
                    "shard {}: commit log position `{text}` is not <sequence>.<sub-sequence>",
                    shard.shard_id
                ))
            })?),
            None => None,
        };
        let mut state = self.lock();
        // A shard whose log is empty may have a position from the earlier position store
        // (lakes written before the commit log): continue after it.
        let last = logged.or_else(|| {
            state
                .committed
                .get(&shard.shard_id)
                .and_then(|p| p.last.clone())
        });
        let start = match &last {
            Some(p) => StartPosition::After(p.clone()),
            // A child of shards read in this run (or, with leases, of finished shards) starts
            // at its beginning.
            None if !initial && !shard.parents.is_empty() => StartPosition::TrimHorizon,
            None => self.options.start.clone(),
        };
        tracing::info!(
            stream = self.stream,
            shard = shard.shard_id,
            next_record = resume.next,
            ?start,
            epoch,
            seeded = seed.as_ref().map(Vec::len),
            "reading shard"
        );
        state.committed.insert(
            shard.shard_id.clone(),
            ShardPosition {
                shard_id: shard.shard_id.clone(),
                last,
                finished: false,
            },
        );
        state.resume.insert(shard.shard_id.clone(), resume);
        if let Some(seed) = seed {
            state.seeds.insert(shard.shard_id.clone(), Arc::new(seed));
        }
        state.reading.insert(shard.shard_id.clone());
        state.epochs.insert(shard.shard_id.clone(), epoch);
        // The reader sends to its own channel; a forwarder tags its events with the stint.
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let reader = tokio::spawn(read_shard(
            self.client.clone(),
            self.stream.clone(),
            shard.shard_id.clone(),
            start,
            self.options.reader.clone(),
            tx,
        ));
        let out = self.tx.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if out.send((epoch, event)).await.is_err() {
                    return;
                }
            }
        });
        let tasks = state.shard_tasks.entry(shard.shard_id.clone()).or_default();
        tasks.retain(|t| !t.is_finished());
        tasks.push(reader);
        tasks.push(forwarder);
        Ok(())
    }

    /// Marks the end of every shard read to its end whose last batch is committed.
    pub(super) async fn commit_ends(&self) -> Result<(), KinesisError> {
        let ends: Vec<ShardPosition> = {
            let state = self.lock();
            state
                .finish_ready
                .iter()
                .filter(|shard| state.in_flight.get(*shard).copied().unwrap_or(0) == 0)
                .map(|shard| ShardPosition {
                    shard_id: shard.clone(),
                    last: state.committed.get(shard).and_then(|p| p.last.clone()),
                    finished: true,
                })
                .collect()
        };
        if ends.is_empty() {
            return Ok(());
        }
        self.store.commit(&self.stream, &ends).await?;
        let mut state = self.lock();
        for end in ends {
            tracing::info!(
                stream = self.stream,
                shard = end.shard_id,
                "shard end committed"
            );
            state.finish_ready.remove(&end.shard_id);
            state.settled = false;
            state.committed.insert(end.shard_id.clone(), end);
        }
        Ok(())
    }
}
