//! `etl leases create | show` and what `etl run` needs for leases (`docs/leases.md`): the lease
//! table from `[leases]` of the configuration file, reached with the `[aws]` settings.

use crate::setup::Setup;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use etl_kinesis::leases::{LeaseItem, LeaseTable, Leasing, ENTITY_LEASE, ENTITY_WORKER};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum LeasesCommand {
    /// Create the lease table (`[leases] table`; on-demand billing) unless it exists.
    Create,
    /// Owner, counter, checkpoint and lag of every shard lease, and the live consumers.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The lease table of `[leases]`; each DynamoDB call gives up after `timeout`.
async fn table(setup: &Setup, timeout: Duration) -> Result<LeaseTable> {
    let Some(name) = &setup.leases.table else {
        bail!("no lease table: set `table` in the [leases] section of the configuration file (or ETL_LEASES__TABLE)");
    };
    let client = etl_aws::AwsClients::load(setup.aws_settings())
        .await?
        .dynamodb();
    Ok(LeaseTable::new(client, name, timeout))
}

/// The leases of `etl run`: `None` unless `[leases] table` is set; the table is created if
/// absent when `create_table` is on.
pub async fn leasing(setup: &Setup) -> Result<Option<Leasing>> {
    let owner = etl_kinesis::writer_name();
    let Some(options) = setup.leases.options(&owner)? else {
        return Ok(None);
    };
    let table = table(
        setup,
        options.renew_interval.max(Duration::from_millis(500)),
    )
    .await?;
    if setup.leases.create_table {
        let created = table
            .create_if_absent()
            .await
            .with_context(|| format!("creating lease table {}", table.name()))?;
        if created {
            tracing::info!(table = table.name(), "lease table created");
        }
    }
    tracing::info!(
        table = table.name(),
        owner,
        "leases on: this process shares the shards with its peers"
    );
    Ok(Some(Leasing { table, options }))
}

/// After a stop request with leases: waits `deadline`, then ends the process (the handover
/// took too long; peers take the leases once they expire). Without leases: never returns.
pub async fn handover_deadline(deadline: Option<Duration>) {
    let Some(deadline) = deadline else {
        return std::future::pending().await;
    };
    tokio::time::sleep(deadline).await;
    tracing::error!(
        deadline_ms = deadline.as_millis() as u64,
        "the handover did not finish within leases.handover_deadline_ms; exiting (peers take the remaining leases when they expire)"
    );
    std::process::exit(1);
}

/// The handover deadline of `etl run` (`None` without leases).
pub fn deadline(setup: &Setup, leasing: &Option<Leasing>) -> Option<Duration> {
    leasing
        .as_ref()
        .map(|_| Duration::from_millis(setup.leases.handover_deadline_ms))
}

pub async fn run(setup: &Setup, command: LeasesCommand) -> Result<()> {
    let table = table(setup, Duration::from_secs(30)).await?;
    match command {
        LeasesCommand::Create => {
            let created = table.create_if_absent().await?;
            println!(
                "lease table {} {}",
                table.name(),
                if created { "created" } else { "already exists" }
            );
        }
        LeasesCommand::Show(args) => {
            let mut items = table.scan().await?;
            items.sort_by(|a, b| {
                (&a.entity, &a.stream, &a.shard, &a.key)
                    .cmp(&(&b.entity, &b.stream, &b.shard, &b.key))
            });
            let (leases, workers): (Vec<&LeaseItem>, Vec<&LeaseItem>) =
                items.iter().partition(|i| i.entity == ENTITY_LEASE);
            let workers: Vec<&LeaseItem> = workers
                .into_iter()
                .filter(|i| i.entity == ENTITY_WORKER)
                .collect();
            if args.json {
                let json = serde_json::json!({
                    "table": table.name(),
                    "leases": leases.iter().map(|l| serde_json::json!({
                        "leaseKey": l.key,
                        "stream": l.stream,
                        "shard": l.shard,
                        "leaseOwner": l.owner,
                        "leaseCounter": l.counter,
                        "checkpoint": l.checkpoint,
                        "checkpointSubSequenceNumber": l.checkpoint_sub,
                        "ownerSwitchesSinceCheckpoint": l.owner_switches,
                        "parentShardId": l.parents,
                        "startingHashKey": l.hash_range.as_ref().map(|r| &r.0),
                        "endingHashKey": l.hash_range.as_ref().map(|r| &r.1),
                        "millisBehindLatest": l.millis_behind,
                    })).collect::<Vec<_>>(),
                    "consumers": workers.iter().map(|w| serde_json::json!({
                        "stream": w.stream,
                        "owner": w.owner,
                        "heartbeat": w.counter,
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&json)?);
                return Ok(());
            }
            println!(
                "lease table {}: {} shard leases",
                table.name(),
                leases.len()
            );
            println!(
                "{:<24} {:<24} {:<36} {:>8} {:>10} {}",
                "stream", "shard", "owner", "counter", "lag ms", "checkpoint"
            );
            for l in &leases {
                println!(
                    "{:<24} {:<24} {:<36} {:>8} {:>10} {}",
                    l.stream,
                    l.shard,
                    l.owner.as_deref().unwrap_or("(free)"),
                    l.counter,
                    l.millis_behind
                        .map_or_else(|| "-".to_string(), |m| m.to_string()),
                    match &l.checkpoint {
                        Some(c) if l.checkpoint_sub > 0 => format!("{c}.{}", l.checkpoint_sub),
                        Some(c) => c.clone(),
                        None => "-".into(),
                    }
                );
            }
            println!("consumers (heartbeats): {}", workers.len());
            for w in &workers {
                let held = leases
                    .iter()
                    .filter(|l| l.stream == w.stream && l.owner == w.owner)
                    .count();
                println!(
                    "  {:<24} {:<36} {} leases, heartbeat {}",
                    w.stream,
                    w.owner.as_deref().unwrap_or("-"),
                    held,
                    w.counter
                );
            }
        }
    }
    Ok(())
}
