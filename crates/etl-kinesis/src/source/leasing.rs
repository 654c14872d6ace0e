//! The lease loop of a source (`docs/leases.md`): every tick it gives up leases it could not
//! renew in time and releases leases it is letting go once their batches are committed; every
//! renew interval it heartbeats and renews what it holds (recording the committed position and
//! the lag in the lease); every half renew interval it scans the table, creates leases of new
//! readable shards, notices leases taken from it, and follows the balancing rule
//! (`leases::plan`): taking a lease starts the shard's reader, losing or releasing one stops it.

use super::Shared;
use crate::leases::table::SHARD_END;
use crate::leases::{
    lease_key, plan, LeaseItem, Leasing, Observations, View, ENTITY_LEASE, ENTITY_WORKER,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// How often the loop looks at local expiry and pending releases.
const TICK: Duration = Duration::from_millis(100);

/// A lease this process holds.
#[derive(Debug, Clone)]
pub(super) struct Held {
    /// `leaseKey`.
    key: String,
    /// `leaseCounter` as this process last wrote it.
    counter: u64,
    /// The reading stint the lease belongs to (batches of other stints are not committed).
    pub(super) epoch: u64,
    /// Until when this process may commit the shard's batches (see `LeaseOptions::validity`).
    pub(super) valid_until: Instant,
    /// Being let go: not read any more, released once its batches in flight are committed.
    releasing: bool,
    /// When it was taken.
    since: Instant,
    /// The checkpoint last written to the lease.
    written: Option<String>,
}

/// Counts of lease changes by this process (`etl_lease_changes_total`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LeaseCounts {
    /// Leases held now.
    pub held: u64,
    /// Leases taken.
    pub taken: u64,
    /// Leases released (let go to balance, at shutdown, or at a shard's end).
    pub released: u64,
    /// Leases lost: taken by a peer, not renewed in time, or fenced by the commit log.
    pub lost: u64,
}

/// The lease state of a source.
pub(super) struct LeaseRuntime {
    pub(super) leasing: Leasing,
    held: Mutex<HashMap<String, Held>>,
    observations: Mutex<Observations>,
    /// Held by a pass and by the final release, so they never overlap.
    pass: tokio::sync::Mutex<()>,
    closing: AtomicBool,
    /// The heartbeat was removed (stopping).
    farewell: AtomicBool,
    heartbeat: AtomicU64,
    taken: AtomicU64,
    released: AtomicU64,
    lost: AtomicU64,
}

impl LeaseRuntime {
    pub(super) fn new(leasing: Leasing) -> Self {
        LeaseRuntime {
            leasing,
            held: Mutex::new(HashMap::new()),
            observations: Mutex::new(Observations::default()),
            pass: tokio::sync::Mutex::new(()),
            closing: AtomicBool::new(false),
            farewell: AtomicBool::new(false),
            heartbeat: AtomicU64::new(0),
            taken: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    pub(super) fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn me(&self) -> &str {
        &self.leasing.options.owner
    }

    pub(super) fn counts(&self) -> LeaseCounts {
        LeaseCounts {
            held: self.held().values().filter(|h| !h.releasing).count() as u64,
            taken: self.taken.load(Ordering::Relaxed),
            released: self.released.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }

    /// Whether a batch of `shard` read in stint `epoch` may be committed now.
    pub(super) fn may_commit(&self, shard: &str, epoch: u64) -> bool {
        self.held()
            .get(shard)
            .is_some_and(|h| h.epoch == epoch && Instant::now() < h.valid_until)
    }
}

/// Runs the lease loop of `shared` until the source is dropped or its leases are released.
pub(super) async fn run(shared: Weak<Shared>) {
    let mut last_pass: Option<Instant> = None;
    let mut last_renewal: Option<Instant> = None;
    loop {
        tokio::time::sleep(TICK).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(rt) = shared.leases.as_ref() else {
            return;
        };
        let _pass = rt.pass.lock().await;
        if rt.closing.load(Ordering::SeqCst) {
            return;
        }
        shared.expire_local();
        if shared.stop.is_stopped() {
            shared.let_all_go();
            if !rt.farewell.swap(true, Ordering::SeqCst) {
                // Peers stop counting this process at once, so their fair share grows and
                // they take the leases it lets go.
                if let Err(e) = rt
                    .leasing
                    .table
                    .delete_heartbeat(&shared.stream, rt.me())
                    .await
                {
                    tracing::warn!(stream = shared.stream, error = %e, "removing the heartbeat failed; peers stop counting this process once it expires");
                }
            }
        }
        shared.release_drained().await;
        // Scans (and takes) every half renew interval, so a released lease is picked up
        // quickly; renewals every renew interval.
        let interval = rt.leasing.options.renew_interval;
        if last_pass.is_none_or(|t| t.elapsed() >= interval / 2) {
            last_pass = Some(Instant::now());
            let renew = last_renewal.is_none_or(|t| t.elapsed() >= interval);
            if renew {
                last_renewal = last_pass;
            }
            if let Err(e) = shared.lease_pass(renew).await {
                tracing::warn!(stream = shared.stream, error = %e, "lease pass failed; held leases stay valid until they expire locally");
            }
        }
    }
}

impl Shared {
    fn lease_rt(&self) -> Option<&LeaseRuntime> {
        self.leases.as_ref()
    }

    /// Gives up leases whose validity passed without a renewal (DynamoDB unreachable): the
    /// shard is not read or committed any more, before any peer can see the lease expired.
    fn expire_local(&self) {
        let Some(rt) = self.lease_rt() else { return };
        let now = Instant::now();
        let expired: Vec<String> = rt
            .held()
            .iter()
            .filter(|(_, h)| now >= h.valid_until)
            .map(|(s, _)| s.clone())
            .collect();
        for shard in expired {
            tracing::warn!(
                stream = self.stream,
                shard,
                "lease not renewed in time: this process stops reading and committing the shard"
            );
            rt.held().remove(&shard);
            rt.lost.fetch_add(1, Ordering::Relaxed);
            self.stop_shard(&shard);
        }
    }

    /// After a stop request: stops reading every held shard and lets each lease go as soon as
    /// its batches in flight are committed (peers take it while the others still drain).
    fn let_all_go(&self) {
        let Some(rt) = self.lease_rt() else { return };
        let shards: Vec<String> = rt
            .held()
            .iter()
            .filter(|(_, h)| !h.releasing)
            .map(|(s, _)| s.clone())
            .collect();
        for shard in shards {
            self.stop_shard(&shard);
            if let Some(h) = rt.held().get_mut(&shard) {
                h.releasing = true;
            }
        }
    }

    /// Releases leases being let go whose batches are all committed.
    async fn release_drained(&self) {
        let Some(rt) = self.lease_rt() else { return };
        let ready: Vec<(String, Held)> = {
            let state = self.lock();
            rt.held()
                .iter()
                .filter(|(s, h)| h.releasing && state.in_flight.get(*s).copied().unwrap_or(0) == 0)
                .map(|(s, h)| (s.clone(), h.clone()))
                .collect()
        };
        for (shard, held) in ready {
            self.release_one(rt, &shard, &held, None).await;
        }
    }

    /// Releases one held lease (recording the committed position or `end`) and forgets it.
    async fn release_one(&self, rt: &LeaseRuntime, shard: &str, held: &Held, end: Option<&str>) {
        let checkpoint = match end {
            Some(end) => Some((end.to_string(), 0)),
            None => self.committed_checkpoint(shard),
        };
        let cp = checkpoint.as_ref().map(|(s, n)| (s.as_str(), *n));
        match rt
            .leasing
            .table
            .release(&held.key, held.counter, rt.me(), cp)
            .await
        {
            Ok(true) => {
                rt.released.fetch_add(1, Ordering::Relaxed);
                tracing::info!(stream = self.stream, shard, "lease released");
            }
            Ok(false) => {
                rt.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    stream = self.stream,
                    shard,
                    "lease was no longer ours when releasing it"
                );
            }
            Err(e) => {
                rt.lost.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(stream = self.stream, shard, error = %e, "releasing the lease failed; peers take it once it expires");
            }
        }
        rt.held().remove(shard);
    }

    /// The shard's last committed position as `(sequence number, sub-sequence)`.
    fn committed_checkpoint(&self, shard: &str) -> Option<(String, u64)> {
        let state = self.lock();
        let last = state.committed.get(shard)?.last.as_ref()?;
        Some((last.sequence_number.as_str().to_string(), last.sub_sequence))
    }

    /// Drops `shard` after its commit was fenced (another writer committed it): stops it and
    /// releases its lease so that the owner the table agrees on reads it.
    pub(super) async fn fenced(&self, shard: &str) {
        let Some(rt) = self.lease_rt() else { return };
        self.stop_shard(shard);
        let held = rt.held().get(shard).cloned();
        if let Some(held) = held {
            self.release_one(rt, shard, &held, None).await;
            rt.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Heartbeat, renewals, scan, new leases, losses, shard ends and the balancing rule.
    async fn lease_pass(self: &Arc<Self>, renew: bool) -> Result<(), crate::leases::LeaseError> {
        let Some(rt) = self.lease_rt() else {
            return Ok(());
        };
        let options = &rt.leasing.options;
        let table = &rt.leasing.table;
        let me = rt.me();
        if renew && !rt.farewell.load(Ordering::SeqCst) {
            let beat = rt.heartbeat.fetch_add(1, Ordering::Relaxed) + 1;
            if let Err(e) = table.heartbeat(&self.stream, me, beat).await {
                // Renewals are tried all the same: they are what keeps the leases.
                tracing::warn!(stream = self.stream, error = %e, "heartbeat failed");
            }
        }

        // Renew every held lease (those being let go too, until they are released).
        let snapshot: Vec<(String, Held)> = if renew {
            rt.held()
                .iter()
                .map(|(s, h)| (s.clone(), h.clone()))
                .collect()
        } else {
            Vec::new()
        };
        for (shard, held) in snapshot {
            let checkpoint = self
                .committed_checkpoint(&shard)
                .filter(|(seq, sub)| held.written.as_deref() != Some(&format!("{seq}.{sub}")));
            let lag = self.lock().lag.get(&shard).copied();
            let sent = Instant::now();
            let cp = checkpoint.as_ref().map(|(s, n)| (s.as_str(), *n));
            match table.renew(&held.key, held.counter, me, cp, lag).await {
                Ok(true) => {
                    if let Some(h) = rt.held().get_mut(&shard).filter(|h| h.epoch == held.epoch) {
                        h.counter += 1;
                        h.valid_until = sent + options.validity();
                        if let Some((seq, sub)) = &checkpoint {
                            h.written = Some(format!("{seq}.{sub}"));
                        }
                    }
                }
                Ok(false) => {
                    tracing::warn!(
                        stream = self.stream,
                        shard,
                        "lease taken by another consumer: this process stops reading the shard"
                    );
                    rt.held().remove(&shard);
                    rt.lost.fetch_add(1, Ordering::Relaxed);
                    self.stop_shard(&shard);
                }
                Err(e) => {
                    tracing::warn!(stream = self.stream, shard, error = %e, "renewing the lease failed; retrying next pass")
                }
            }
        }

        let items = table.scan().await?;
        let now = Instant::now();
        let (live, takeable, stale) = {
            let mut obs = rt
                .observations
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            obs.observe(&items, now);
            let expired = |i: &LeaseItem| obs.expired(i, now, options.lease_duration);
            let live = 1 + items
                .iter()
                .filter(|i| i.entity == ENTITY_WORKER && i.stream == self.stream)
                .filter(|i| i.owner.as_deref() != Some(me) && !expired(i))
                .count();
            let takeable: BTreeSet<String> = items
                .iter()
                .filter(|i| i.entity == ENTITY_LEASE && i.stream == self.stream)
                .filter(|i| i.checkpoint.as_deref() != Some(SHARD_END))
                .filter(|i| i.owner.is_none() || expired(i))
                .map(|i| i.shard.clone())
                .collect();
            // Heartbeats of consumers that died without removing theirs: removed, so a
            // consumer starting later does not count them for a lease duration.
            let stale: Vec<(String, u64)> = items
                .iter()
                .filter(|i| i.entity == ENTITY_WORKER && i.stream == self.stream)
                .filter(|i| expired(i))
                .map(|i| (i.key.clone(), i.counter))
                .collect();
            (live, takeable, stale)
        };
        for (key, counter) in stale {
            tracing::info!(
                stream = self.stream,
                heartbeat = key,
                "removing the heartbeat of a consumer that stopped without removing it"
            );
            table.delete_stale_heartbeat(&key, counter).await?;
        }
        let by_shard: HashMap<&str, &LeaseItem> = items
            .iter()
            .filter(|i| i.entity == ENTITY_LEASE && i.stream == self.stream)
            .map(|i| (i.shard.as_str(), i))
            .collect();
        let (readable, finished) = {
            let state = self.lock();
            let finished: BTreeSet<String> = state
                .committed
                .values()
                .filter(|p| p.finished)
                .map(|p| p.shard_id.clone())
                .collect();
            (state.readable.clone(), finished)
        };

        // Leases held here that the table gives to someone else, and shards read to their end.
        let held_now: Vec<(String, Held)> = rt
            .held()
            .iter()
            .map(|(s, h)| (s.clone(), h.clone()))
            .collect();
        for (shard, held) in &held_now {
            if finished.contains(shard) {
                self.stop_shard(shard);
                self.release_one(rt, shard, held, Some(SHARD_END)).await;
                continue;
            }
            let item = by_shard.get(shard.as_str());
            if item.is_some_and(|i| i.owner.as_deref() != Some(me) || i.counter != held.counter) {
                tracing::warn!(stream = self.stream, shard, "the lease table gives the shard to another consumer: this process stops reading it");
                rt.held().remove(shard);
                rt.lost.fetch_add(1, Ordering::Relaxed);
                self.stop_shard(shard);
            }
        }

        // Leases of new readable shards.
        for info in readable
            .iter()
            .filter(|s| !by_shard.contains_key(s.shard_id.as_str()))
        {
            table.ensure(&self.stream, info).await?;
        }

        let (held, releasing, held_order) = {
            let h = rt.held();
            let held: BTreeSet<String> = h
                .iter()
                .filter(|(_, h)| !h.releasing)
                .map(|(s, _)| s.clone())
                .collect();
            let releasing: BTreeSet<String> = h
                .iter()
                .filter(|(_, h)| h.releasing)
                .map(|(s, _)| s.clone())
                .collect();
            let mut order: Vec<(&String, &Held)> = h.iter().filter(|(_, h)| !h.releasing).collect();
            order.sort_by_key(|(s, h)| (h.since, (*s).clone()));
            let order: Vec<String> = order.into_iter().map(|(s, _)| s.clone()).collect();
            (held, releasing, order)
        };
        let view = View {
            me,
            leases: readable
                .iter()
                .filter_map(|s| by_shard.get(s.shard_id.as_str()).copied())
                .filter(|i| !releasing.contains(&i.shard))
                .collect(),
            live,
            held,
            held_order,
            takeable,
            max_leases: options.max_leases,
            max_take: options.max_taken_per_pass,
            stopping: self.stop.is_stopped(),
        };
        let decided = plan(&view);
        tracing::debug!(stream = self.stream, live, target = decided.target, take = ?decided.take, release = ?decided.release, "lease pass");
        for shard in &decided.release {
            tracing::info!(
                stream = self.stream,
                shard,
                target = decided.target,
                live,
                "letting a lease go (more than the fair share)"
            );
            self.stop_shard(shard);
            if let Some(h) = rt.held().get_mut(shard) {
                h.releasing = true;
            }
        }
        for shard in &decided.take {
            let (Some(item), Some(info)) = (
                by_shard.get(shard.as_str()),
                readable.iter().find(|s| &s.shard_id == shard),
            ) else {
                continue;
            };
            let sent = Instant::now();
            match table
                .take(&item.key, item.counter, item.owner.as_deref(), me)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        stream = self.stream,
                        shard,
                        "another consumer took the lease first"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(stream = self.stream, shard, error = %e, "taking the lease failed");
                    continue;
                }
            }
            let epoch = self.next_epoch();
            rt.held().insert(
                shard.clone(),
                Held {
                    key: lease_key(&self.stream, shard),
                    counter: item.counter + 1,
                    epoch,
                    valid_until: sent + options.validity(),
                    releasing: false,
                    since: Instant::now(),
                    written: None,
                },
            );
            rt.taken.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                stream = self.stream,
                shard,
                previous_owner = item.owner.as_deref().unwrap_or("-"),
                "lease taken"
            );
            if let Err(e) = self.start_shard(info, epoch, false).await {
                tracing::warn!(stream = self.stream, shard, error = %e, "starting the shard failed; releasing its lease");
                self.stop_shard(shard);
                let held = rt.held().get(shard).cloned();
                if let Some(held) = held {
                    self.release_one(rt, shard, &held, None).await;
                }
            }
        }
        Ok(())
    }

    /// At the end of a run (after every batch was committed): releases every lease held and
    /// removes this process's heartbeat, so peers take the shards in their next pass instead
    /// of waiting for expiry. The lease loop ends.
    pub(super) async fn release_all(&self) {
        let Some(rt) = self.lease_rt() else { return };
        let _pass = rt.pass.lock().await;
        rt.closing.store(true, Ordering::SeqCst);
        let held: Vec<(String, Held)> = rt
            .held()
            .iter()
            .map(|(s, h)| (s.clone(), h.clone()))
            .collect();
        for (shard, held) in held {
            self.stop_shard(&shard);
            self.release_one(rt, &shard, &held, None).await;
        }
        if let Err(e) = rt
            .leasing
            .table
            .delete_heartbeat(&self.stream, rt.me())
            .await
        {
            tracing::warn!(stream = self.stream, error = %e, "removing the heartbeat failed; peers stop counting this process once it expires");
        }
    }
}
