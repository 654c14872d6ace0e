//! Several `etl run` processes sharing a stream's shards through the DynamoDB lease table
//! (`docs/leases.md`), against kinesalite, moto's DynamoDB (behind a fault proxy that counts and
//! can cut the calls) and a local lake: balance from cold, takeover after `kill -9`, a rolling
//! restart with SIGTERM, a DynamoDB outage, persisted dedup across SIGKILLs, `etl leases show`.
//! Every test checks that each produced event is in the lake exactly once. The figures are
//! printed (run with `--nocapture` to see them).

mod harness;

use harness::{
    assert_exactly_once, owner_pid, path_str, timings, wait_committed, Bed, Error, Producer,
};
use std::time::{Duration, Instant, SystemTime};

type TestResult = Result<(), Error>;

fn balanced(
    pids: &[u32],
    shards: usize,
) -> impl Fn(&std::collections::BTreeMap<u32, usize>) -> bool + '_ {
    move |h| {
        let share = shards as f64 / pids.len() as f64;
        let owned: usize = pids.iter().map(|p| h.get(p).copied().unwrap_or(0)).sum();
        owned == shards
            && pids.iter().all(|p| {
                let n = h.get(p).copied().unwrap_or(0) as f64;
                (n - share).abs() <= 1.0
            })
    }
}

/// Acceptance 1–3 and the cost figure: 3 replicas on 12 shards balance to 4±1 from cold; after
/// `kill -9` of one, its shards are owned again within 2 lease durations; a rolling restart
/// with SIGTERM (each replica exits 0 and hands its leases over); every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_balance_take_over_and_hand_over() -> TestResult {
    let t = timings();
    let (lease_ms, renew_ms) = (t.lease_ms, t.renew_ms);
    let bed = Bed::new("leases-3", 12).await?;
    let producer = Producer::start(&bed, 7, 300, None);
    let mut replicas = vec![bed.replica("a")?, bed.replica("b")?, bed.replica("c")?];
    let started = Instant::now();
    let pids: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
    let cold = bed
        .wait_holdings(
            Duration::from_secs(40),
            "balance from cold",
            balanced(&pids, 12),
        )
        .await?;
    println!(
        "figure: 3 replicas balanced (4±1 each) {:.1} s after start",
        cold.as_secs_f64()
    );
    // Every replica has taken its first lease well within 2 lease durations of the first one.
    assert!(
        cold < Duration::from_secs(30),
        "balance took {cold:?} (processes start, create the table, then lease)"
    );

    // Steady state: count lease moves and DynamoDB calls over a window.
    let window = t.steady;
    let before = bed.leases().await?;
    let calls_before = bed.proxy.stats().requests;
    tokio::time::sleep(window).await;
    let calls = bed.proxy.stats().requests - calls_before;
    let after = bed.leases().await?;
    let moves = before
        .iter()
        .filter(|b| after.iter().any(|a| a.key == b.key && a.owner != b.owner))
        .count();
    let per_shard_minute = calls as f64 / 12.0 * 60.0 / window.as_secs_f64();
    println!(
        "figure: steady state: {moves} lease moves in {window:?}; {calls} DynamoDB calls = {per_shard_minute:.1} per shard per minute (renew {renew_ms} ms, 3 replicas)"
    );
    assert_eq!(moves, 0, "no lease moves once balanced");

    // kill -9 one replica: its shards are owned by the others within 2 lease durations.
    let victim = replicas.remove(2);
    let mut victim = victim;
    victim.kill9()?;
    let killed = Instant::now();
    let live: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
    let takeover = bed
        .wait_holdings(
            Duration::from_millis(5 * lease_ms),
            "takeover after kill -9",
            balanced(&live, 12),
        )
        .await?;
    println!("figure: takeover after kill -9: all 12 shards owned by the 2 live replicas after {:.1} s (lease {lease_ms} ms)", takeover.as_secs_f64());
    assert!(
        killed.elapsed() <= Duration::from_millis(2 * lease_ms + renew_ms),
        "takeover took {takeover:?}, over 2 lease durations"
    );

    // A new third replica, then a rolling restart of all three with SIGTERM.
    replicas.push(bed.replica("c2")?);
    let pids: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
    bed.wait_holdings(
        Duration::from_secs(30),
        "rebalance with a new replica",
        balanced(&pids, 12),
    )
    .await?;
    let rolling_from = SystemTime::now();
    let mut exits = Vec::new();
    for i in 0..3 {
        let name = format!("{}-2", replicas[i].name);
        let (code, took) = replicas[i].terminate(Duration::from_secs(25)).await?;
        exits.push((replicas[i].name.clone(), code, took));
        replicas[i] = bed.replica(&name)?;
        let pids: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
        bed.wait_holdings(
            Duration::from_secs(30),
            "rebalance after a restart",
            balanced(&pids, 12),
        )
        .await?;
    }
    let rolling_to = SystemTime::now();
    for (name, code, took) in &exits {
        println!(
            "figure: replica {name} exited with {code:?} {:.1} s after SIGTERM",
            took.as_secs_f64()
        );
        assert_eq!(
            *code,
            Some(0),
            "replica {name} exits 0 after SIGTERM:\n{}",
            bed.log(name)
        );
        assert!(
            bed.log(name).contains("lease released"),
            "replica {name} released its leases"
        );
    }
    let (gap, shard) = bed.longest_gap(rolling_from, rolling_to)?;
    println!(
        "figure: rolling restart of 3 replicas: longest per-shard consumption gap {:.1} s (shard {shard}; batches every {} ms, renew {renew_ms} ms)",
        gap.as_secs_f64(),
        t.batch_ms
    );
    assert!(
        gap < Duration::from_secs(5),
        "a shard paused {gap:?} ({shard})"
    );

    let (ids, _) = producer.stop().await?;
    let got = wait_committed(&bed, ids.len(), Duration::from_secs(30)).await?;
    assert_exactly_once(&got, &ids)?;
    println!(
        "figure: {} events, each exactly once in the lake; test took {:.0} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    let show = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args(["--config", path_str(&bed.config), "leases", "show"])
        .output()?;
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "leases show: {}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        text.contains("12 shard leases") && text.contains(&bed.stream),
        "{text}"
    );
    let json = std::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .args([
            "--config",
            path_str(&bed.config),
            "leases",
            "show",
            "--json",
        ])
        .output()?;
    assert!(
        json.status.success(),
        "leases show --json: {}",
        String::from_utf8_lossy(&json.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    let leases = json["leases"].as_array().ok_or("a list of leases")?;
    assert_eq!(leases.len(), 12);
    let live: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
    for lease in leases {
        let owner = lease["leaseOwner"].as_str().ok_or("every lease is owned")?;
        assert!(live.contains(&owner_pid(owner)), "{lease}");
        assert!(
            lease["checkpoint"]
                .as_str()
                .is_some_and(|c| c.chars().all(|d| d.is_ascii_digit())),
            "{lease}"
        );
    }
    Ok(())
}

/// Acceptance 6: DynamoDB unreachable for 30 s (every call to it dropped by the proxy): the
/// replicas stop writing the shards whose leases they cannot renew, take them again afterwards,
/// and every event is in the lake exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dynamodb_outage_pauses_writing_and_loses_nothing() -> TestResult {
    let t = timings();
    let bed = Bed::new("leases-outage", 4).await?;
    let producer = Producer::start(&bed, 11, 200, None);
    let replicas = [bed.replica("a")?, bed.replica("b")?];
    let pids: Vec<u32> = replicas.iter().map(|r| r.pid()).collect();
    bed.wait_holdings(Duration::from_secs(40), "balance", balanced(&pids, 4))
        .await?;
    bed.proxy.set_plan(etl_testbed::FaultPlan {
        drop_fraction: 1.0,
        ..Default::default()
    });
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    bed.proxy.set_plan(etl_testbed::FaultPlan::default());
    let back = SystemTime::now();
    // During the outage, no commit happened later than the lease validity after the cut.
    let validity = Duration::from_millis(t.lease_ms - t.renew_ms) + Duration::from_secs(2);
    for (shard, times) in bed.commit_times()? {
        let late: Vec<_> = times
            .iter()
            .filter(|t| **t > cut + validity && **t < back)
            .collect();
        assert!(
            late.is_empty(),
            "shard {shard} was committed {} times during the outage after its lease ran out",
            late.len()
        );
    }
    // Afterwards every shard is read and committed again.
    let resumed = Instant::now();
    loop {
        let times = bed.commit_times()?;
        if times.len() == 4 && times.values().all(|t| t.last().is_some_and(|t| *t > back)) {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(30),
            "not every shard committed again after the outage: {:?}",
            times
                .iter()
                .map(|(s, t)| (s, t.last().is_some_and(|t| *t > back)))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "figure: after a 30 s DynamoDB outage, every shard committed again within {:.1} s",
        resumed.elapsed().as_secs_f64()
    );
    let (ids, _) = producer.stop().await?;
    let got = wait_committed(&bed, ids.len(), Duration::from_secs(40)).await?;
    assert_exactly_once(&got, &ids)?;
    // Each replica gave its shards up: by the lease loop (validity ran out) or by the committer
    // (a batch refused because its lease was no longer valid), whichever noticed first.
    for r in &replicas {
        let log = bed.log(&r.name);
        assert!(
            log.contains("lease not renewed in time") || log.contains("lease lost"),
            "replica {} did not give its shards up:\n{log}",
            r.name
        );
    }
    Ok(())
}

/// Acceptance 5: SIGKILL and restart one replica over and over while the producer sends every
/// 5th record again ~2 s later with the same partition key (a producer retry): no copy of a
/// record reaches the lake twice, because a shard's dedup window starts with the ids of its
/// last committed batches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_duplicates_are_dropped_across_sigkill_restarts() -> TestResult {
    let bed = Bed::new("leases-dedup", 2).await?;
    let producer = Producer::start(&bed, 13, 200, Some(5));
    let mut replica = bed.replica("r0")?;
    // 6 in CI (each restart waits out a lease); ETL_LEASES_TEST_RESTARTS=20 for the figure.
    let restarts: u32 = std::env::var("ETL_LEASES_TEST_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    for i in 1..=restarts {
        bed.wait_holdings(Duration::from_secs(30), "leases held", |h| {
            h.get(&replica.pid()).copied() == Some(2)
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        replica.kill9()?;
        replica = bed.replica(&format!("r{i}"))?;
    }
    let (ids, duplicated) = producer.stop().await?;
    let got = wait_committed(&bed, ids.len(), Duration::from_secs(60)).await?;
    assert!(
        duplicated.len() > 20,
        "the feed has duplicates: {}",
        duplicated.len()
    );
    assert_exactly_once(&got, &ids)?;
    println!(
        "figure: {restarts} SIGKILL restarts, {} events of which {} sent twice: each exactly once in the lake",
        ids.len(),
        duplicated.len()
    );
    drop(replica);
    Ok(())
}

#[test]
fn owner_names_carry_the_pid() {
    assert_eq!(owner_pid("host-1-2-1234-1700000000000"), 1234);
    assert_eq!(owner_pid("nonsense"), u32::MAX);
}
