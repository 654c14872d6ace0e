//! The lease table against moto's DynamoDB (`etl_kinesis::leases`, `docs/leases.md`): every
//! ownership change is a conditional write on `leaseCounter`, so of two consumers racing for
//! the same expired lease exactly one wins; renewals and releases by a consumer that lost the
//! lease fail; the table keeps KCL's attribute names.

use crate::{Context, TestResult};
use etl_aws::dynamodb::types::AttributeValue;
use etl_kinesis::leases::{lease_key, LeaseTable};
use etl_kinesis::shards::ShardInfo;
use std::time::Duration;

async fn new_table(name: &str) -> Result<(LeaseTable, etl_aws::dynamodb::Client), crate::Failure> {
    let client = etl_testbed::moto()
        .await
        .context("moto")?
        .clients()
        .await
        .context("clients")?
        .dynamodb();
    let table = LeaseTable::new(
        client.clone(),
        &etl_testbed::unique_name(name),
        Duration::from_secs(10),
    );
    assert!(table.create_if_absent().await.context("create")?, "created");
    assert!(
        !table.create_if_absent().await.context("create again")?,
        "a second create finds the table"
    );
    Ok((table, client))
}

fn shard(id: &str) -> ShardInfo {
    ShardInfo {
        shard_id: id.into(),
        parents: vec!["shardId-000000000000".into()],
        closed: false,
        hash_range: Some(("0".into(), "170141183460469231731687303715884105727".into())),
    }
}

/// 20 rounds: the lease's owner stops renewing (it is expired for everybody who saw the same
/// counter); two consumers decide to take it on that same observation; exactly one succeeds,
/// the table names it, and the loser's renewal fails.
///
/// The two takes reach the table one after the other (which one first alternates): moto does
/// not serialize concurrent conditional writes to one item (it checks the condition and writes
/// without a lock, so two truly simultaneous requests can both pass there), while DynamoDB does.
/// What is under test is ours: both takes carry the counter both contenders observed, and the
/// second one is refused and not mistaken for a retried success.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_racing_for_an_expired_lease_one_wins() -> TestResult {
    let (table, _) = new_table("lease-race").await?;
    table
        .ensure("s", &shard("shardId-000000000001"))
        .await
        .context("ensure")?;
    let key = lease_key("s", "shardId-000000000001");
    assert!(table
        .take(&key, 0, None, "dead")
        .await
        .context("first take")?);
    let mut wins = std::collections::BTreeMap::new();
    for round in 0..20 {
        let item = table.get(&key).await.context("get")?.context("lease")?;
        let (a, b): (&'static str, &'static str) = if round % 4 < 2 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        let take = |me: &'static str| table.take(&key, item.counter, item.owner.as_deref(), me);
        let (ra, rb) = if round % 2 == 0 {
            let ra = take(a).await.context("take a")?;
            (ra, take(b).await.context("take b")?)
        } else {
            let rb = take(b).await.context("take b")?;
            (take(a).await.context("take a")?, rb)
        };
        assert!(
            ra ^ rb,
            "round {round}: exactly one wins (a: {ra}, b: {rb})"
        );
        let winner = if ra { a } else { b };
        let loser = if ra { b } else { a };
        let now = table.get(&key).await.context("get")?.context("lease")?;
        assert_eq!(now.owner.as_deref(), Some(winner), "round {round}");
        assert_eq!(
            now.counter,
            item.counter + 1,
            "round {round}: one counter step"
        );
        assert!(
            !table
                .renew(&key, item.counter, loser, None, None)
                .await
                .context("renew by the loser")?,
            "round {round}: the loser cannot renew"
        );
        *wins.entry(winner).or_insert(0u32) += 1;
    }
    println!("race winners over 20 rounds: {wins:?}");
    Ok(())
}

/// Renew moves the counter and records the checkpoint (resetting the owner switches); a release
/// removes the owner; a stale counter cannot release; the item reads with KCL's names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_checkpoint_release_and_kcl_attribute_names() -> TestResult {
    let (table, client) = new_table("lease-cycle").await?;
    table
        .ensure("s", &shard("shardId-000000000002"))
        .await
        .context("ensure")?;
    // A second ensure leaves the existing lease alone.
    let key = lease_key("s", "shardId-000000000002");
    assert!(table.take(&key, 0, None, "me").await.context("take")?);
    table
        .ensure("s", &shard("shardId-000000000002"))
        .await
        .context("ensure again")?;
    assert!(table
        .renew(
            &key,
            1,
            "me",
            Some((
                "49590338271490256608559692538361571095921575989136588898",
                3
            )),
            Some(1500)
        )
        .await
        .context("renew")?);
    assert!(!table
        .release(&key, 1, "me", None)
        .await
        .context("stale release")?);
    let raw = client
        .get_item()
        .table_name(table.name())
        .key("leaseKey", AttributeValue::S(key.clone()))
        .consistent_read(true)
        .send()
        .await
        .context("GetItem")?;
    let item = raw.item().context("item")?;
    let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).cloned();
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    assert_eq!(s("leaseOwner").as_deref(), Some("me"));
    assert_eq!(n("leaseCounter").as_deref(), Some("2"));
    assert_eq!(
        s("checkpoint").as_deref(),
        Some("49590338271490256608559692538361571095921575989136588898")
    );
    assert_eq!(n("checkpointSubSequenceNumber").as_deref(), Some("3"));
    assert_eq!(n("ownerSwitchesSinceCheckpoint").as_deref(), Some("0"));
    assert_eq!(
        item.get("parentShardId")
            .and_then(|v| v.as_ss().ok())
            .cloned(),
        Some(vec!["shardId-000000000000".to_string()])
    );
    assert_eq!(s("startingHashKey").as_deref(), Some("0"));
    assert!(s("endingHashKey").is_some());
    assert!(table
        .release(&key, 2, "me", None)
        .await
        .context("release")?);
    let released = table.get(&key).await.context("get")?.context("lease")?;
    assert_eq!((released.owner, released.counter), (None, 3));
    // A peer takes the released lease and counts an owner switch.
    assert!(table
        .take(&key, 3, None, "peer")
        .await
        .context("take released")?);
    let taken = table.get(&key).await.context("get")?.context("lease")?;
    assert_eq!(taken.owner_switches, 1);
    Ok(())
}
