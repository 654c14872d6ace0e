//! Expiry as observed (no clocks compared) and the balancing rule: which leases a consumer takes
//! and which it lets go in one pass. Pure functions, unit-tested here.

use super::table::LeaseItem;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// When this process last saw each item's `leaseCounter` change (KCL's rule: a lease is expired
/// when its counter has not moved for a lease duration **on the observer's clock**, so clock
/// skew between hosts does not matter).
#[derive(Debug, Default)]
pub struct Observations {
    seen: HashMap<String, (u64, Option<String>, Instant)>,
}

impl Observations {
    /// Records a scan made at `now`.
    pub fn observe(&mut self, items: &[LeaseItem], now: Instant) {
        for item in items {
            let changed = self
                .seen
                .get(&item.key)
                .is_none_or(|(c, o, _)| *c != item.counter || *o != item.owner);
            if changed {
                self.seen
                    .insert(item.key.clone(), (item.counter, item.owner.clone(), now));
            }
        }
        let keys: BTreeSet<&str> = items.iter().map(|i| i.key.as_str()).collect();
        self.seen.retain(|k, _| keys.contains(k.as_str()));
    }

    /// Whether `item` has an owner that has not moved its counter for `duration` up to `now`.
    /// An item first seen in this pass is not expired yet (its owner gets a full duration).
    pub fn expired(&self, item: &LeaseItem, now: Instant, duration: Duration) -> bool {
        item.owner.is_some()
            && self
                .seen
                .get(&item.key)
                .is_some_and(|(_, _, since)| now.saturating_duration_since(*since) >= duration)
    }
}

/// What one pass does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Shards to take (free, expired, or recorded as ours but not held here), in order.
    pub take: Vec<String>,
    /// Shards to let go (this process holds more than its share).
    pub release: Vec<String>,
    /// The fair share this pass aimed at.
    pub target: usize,
}

/// The inputs of [`plan`] for one stream.
#[derive(Debug)]
pub struct View<'a> {
    /// This consumer.
    pub me: &'a str,
    /// The shards to be leased (readable now), with their lease items.
    pub leases: Vec<&'a LeaseItem>,
    /// Live consumers of the stream, this one included.
    pub live: usize,
    /// Shards this process holds (and is not letting go already).
    pub held: BTreeSet<String>,
    /// The shards of `held`, the longest held first: the surplus is let go in this order, so
    /// a shard that has just moved (and paused) is not moved again right away.
    pub held_order: Vec<String>,
    /// Shards whose lease is free or expired (by [`Observations::expired`]).
    pub takeable: BTreeSet<String>,
    /// Most leases held by one consumer.
    pub max_leases: usize,
    /// Most leases taken in one pass.
    pub max_take: usize,
    /// Whether this consumer is stopping (takes nothing).
    pub stopping: bool,
}

/// The fair share of `shards` among `live` consumers: `ceil(shards / live)`, at most `max`.
pub fn fair_share(shards: usize, live: usize, max: usize) -> usize {
    shards.div_ceil(live.max(1)).min(max)
}

/// The balancing rule (`docs/leases.md`): below the fair share, take free or expired leases
/// (and leases the table says are ours, after a partition from DynamoDB), at most `max_take`
/// per pass; above it, let the surplus go. Nothing is stolen from a live owner, so two
/// consumers never trade a lease back and forth: the fair shares add up to at least the
/// number of shards, and a consumer only moves towards its own.
pub fn plan(view: &View<'_>) -> Plan {
    let target = fair_share(view.leases.len(), view.live, view.max_leases);
    let held: Vec<&str> = view
        .leases
        .iter()
        .map(|l| l.shard.as_str())
        .filter(|s| view.held.contains(*s))
        .collect();
    let mut out = Plan {
        target,
        ..Plan::default()
    };
    if view.stopping {
        return out;
    }
    if held.len() > target {
        let surplus = held.len() - target;
        out.release = view
            .held_order
            .iter()
            .filter(|s| held.contains(&s.as_str()))
            .take(surplus)
            .cloned()
            .collect();
        return out;
    }
    let wanted = (target - held.len()).min(view.max_take);
    let mut candidates: Vec<&LeaseItem> = view
        .leases
        .iter()
        .copied()
        .filter(|l| !view.held.contains(&l.shard))
        .filter(|l| l.owner.as_deref() == Some(view.me) || view.takeable.contains(&l.shard))
        .collect();
    // Ours first, then free, then expired; within each, an order that differs between
    // consumers so two of them starting together rarely race for the same lease.
    let salt = xxhash(view.me);
    candidates.sort_by_key(|l| {
        let rank = match l.owner.as_deref() {
            Some(o) if o == view.me => 0,
            None => 1,
            Some(_) => 2,
        };
        (rank, xxhash(&l.shard) ^ salt)
    });
    out.take = candidates
        .into_iter()
        .take(wanted)
        .map(|l| l.shard.clone())
        .collect();
    out
}

fn xxhash(s: &str) -> u64 {
    // FNV-1a: a cheap, stable spread (not security relevant).
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(shard: &str, owner: Option<&str>, counter: u64) -> LeaseItem {
        LeaseItem {
            key: format!("s:{shard}"),
            entity: "LEASE".into(),
            stream: "s".into(),
            shard: shard.into(),
            owner: owner.map(str::to_string),
            counter,
            checkpoint: None,
            checkpoint_sub: 0,
            owner_switches: 0,
            parents: vec![],
            hash_range: None,
            millis_behind: None,
        }
    }

    fn view<'a>(me: &'a str, items: &'a [LeaseItem], live: usize) -> View<'a> {
        let held: BTreeSet<String> = items
            .iter()
            .filter(|i| i.owner.as_deref() == Some(me))
            .map(|i| i.shard.clone())
            .collect();
        View {
            me,
            leases: items.iter().collect(),
            live,
            held_order: held.iter().cloned().collect(),
            held,
            takeable: items
                .iter()
                .filter(|i| i.owner.is_none())
                .map(|i| i.shard.clone())
                .collect(),
            max_leases: usize::MAX,
            max_take: 100,
            stopping: false,
        }
    }

    #[test]
    fn fair_share_rounds_up_and_caps() {
        assert_eq!(fair_share(12, 3, 100), 4);
        assert_eq!(fair_share(13, 3, 100), 5);
        assert_eq!(fair_share(12, 0, 100), 12);
        assert_eq!(fair_share(12, 1, 5), 5);
    }

    #[test]
    fn three_consumers_converge_to_four_each_and_then_stay() {
        // Simulate passes: each consumer in turn plans against the current table.
        let mut items: Vec<LeaseItem> = (0..12)
            .map(|i| item(&format!("sh{i:02}"), None, 0))
            .collect();
        let consumers = ["a", "b", "c"];
        let mut moves = 0;
        for round in 0..10 {
            for me in consumers {
                // `a` starts alone for the first round.
                let live = if round == 0 { 1 } else { 3 };
                let p = plan(&view(me, &items, live));
                for shard in &p.release {
                    let i = items.iter_mut().find(|i| &i.shard == shard).unwrap();
                    i.owner = None;
                    i.counter += 1;
                    moves += 1;
                }
                for shard in &p.take {
                    let i = items.iter_mut().find(|i| &i.shard == shard).unwrap();
                    i.owner = Some(me.into());
                    i.counter += 1;
                    moves += 1;
                }
            }
        }
        for me in consumers {
            let n = items
                .iter()
                .filter(|i| i.owner.as_deref() == Some(me))
                .count();
            assert_eq!(n, 4, "{me} holds {n}");
        }
        // Once balanced, further passes change nothing (no ping-pong).
        let before = moves;
        for me in consumers {
            let p = plan(&view(me, &items, 3));
            assert!(p.take.is_empty() && p.release.is_empty(), "{me}: {p:?}");
        }
        assert_eq!(moves, before);
    }

    #[test]
    fn the_surplus_is_the_longest_held() {
        let items: Vec<LeaseItem> = (0..4)
            .map(|i| item(&format!("sh{i}"), Some("a"), 1))
            .collect();
        let mut v = view("a", &items, 2);
        v.held_order = vec!["sh3".into(), "sh1".into(), "sh0".into(), "sh2".into()];
        assert_eq!(plan(&v).release, vec!["sh3".to_string(), "sh1".to_string()]);
    }

    #[test]
    fn a_stopping_consumer_takes_nothing_and_max_take_limits_a_pass() {
        let items: Vec<LeaseItem> = (0..6).map(|i| item(&format!("sh{i}"), None, 0)).collect();
        let mut v = view("a", &items, 1);
        v.max_take = 2;
        assert_eq!(plan(&v).take.len(), 2);
        v.stopping = true;
        assert!(plan(&v).take.is_empty());
    }

    #[test]
    fn ours_in_the_table_but_not_held_comes_first() {
        let items = vec![item("x", None, 3), item("y", Some("a"), 7)];
        let mut v = view("a", &items, 2);
        v.held.clear();
        v.max_take = 1;
        assert_eq!(plan(&v).take, vec!["y".to_string()]);
    }

    #[test]
    fn expiry_counts_on_the_observers_clock() {
        let mut obs = Observations::default();
        let t0 = Instant::now();
        let owned = item("x", Some("b"), 5);
        obs.observe(std::slice::from_ref(&owned), t0);
        let d = Duration::from_secs(10);
        assert!(!obs.expired(&owned, t0 + Duration::from_secs(9), d));
        assert!(obs.expired(&owned, t0 + Duration::from_secs(10), d));
        // A renewal (counter moved) restarts the count.
        let renewed = item("x", Some("b"), 6);
        obs.observe(std::slice::from_ref(&renewed), t0 + Duration::from_secs(10));
        assert!(!obs.expired(&renewed, t0 + Duration::from_secs(19), d));
        // A free lease is never "expired": it is free.
        let free = item("z", None, 1);
        obs.observe(std::slice::from_ref(&free), t0);
        assert!(!obs.expired(&free, t0 + Duration::from_secs(60), d));
    }
}
